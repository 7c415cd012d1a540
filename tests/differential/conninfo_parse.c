/*
 * libpq's own parser as a filter, for tests/differential/conninfo.rs: reads connection strings
 * from standard input, each ended by a NUL byte, and answers each with PQconninfoParse's verdict:
 *
 *   O\n  then a line "keyword<TAB>hex(value)" for every option the string set, then an empty line
 *   E<TAB>hex(error message)\n\n
 *
 * (hex, so that any byte of a value or message survives). With the argument --keywords it prints
 * the keywords this libpq knows (PQconndefaults), one a line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpq-fe.h"

static void hex(const char *s)
{
	for (; *s; s++)
		printf("%02x", (unsigned char) *s);
}

int main(int argc, char **argv)
{
	PQconninfoOption *opts, *o;
	char *buf = NULL, *err;
	size_t cap = 0, len = 0;
	int c;

	if (argc > 1 && strcmp(argv[1], "--keywords") == 0)
	{
		opts = PQconndefaults();
		for (o = opts; o && o->keyword; o++)
			printf("%s\n", o->keyword);
		PQconninfoFree(opts);
		return 0;
	}
	while ((c = getchar()) != EOF)
	{
		if (len + 1 >= cap)
		{
			cap = cap ? cap * 2 : 4096;
			buf = realloc(buf, cap);
			if (!buf)
				return 2;
		}
		if (c != 0)
		{
			buf[len++] = (char) c;
			continue;
		}
		buf[len] = '\0';
		len = 0;
		err = NULL;
		opts = PQconninfoParse(buf, &err);
		if (!opts)
		{
			printf("E\t");
			hex(err ? err : "out of memory");
			printf("\n\n");
			PQfreemem(err);
			continue;
		}
		printf("O\n");
		for (o = opts; o->keyword; o++)
			if (o->val)
			{
				printf("%s\t", o->keyword);
				hex(o->val);
				printf("\n");
			}
		printf("\n");
		PQconninfoFree(opts);
	}
	free(buf);
	return 0;
}
