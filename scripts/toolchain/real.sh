# shellcheck shell=bash
# The real program NAME: the first on PATH that is not one of these wrappers (whichever copy or
# spelling of this directory PATH holds: a wrapper is known by its marker line, not its path).
real_program() {
    local dir candidate
    local IFS=:
    for dir in $PATH; do
        candidate="${dir:-.}/$1"
        [ -f "$candidate" ] && [ -x "$candidate" ] || continue
        local head
        head=$(head -c 200 "$candidate" 2>/dev/null | tr -d '\0' || true)
        [[ $head != *'bytebase-signal toolchain wrapper'* ]] || continue
        printf '%s\n' "$candidate"
        return 0
    done
    return 1
}
