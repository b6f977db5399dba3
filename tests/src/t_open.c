/*
 * t_open PATH FLAGS [MODE]
 *
 * open(2) PATH with FLAGS, a comma separated list of: rdonly, wronly, rdwr,
 * creat, excl, trunc, append, directory, nofollow, path, tmpfile.
 * MODE is octal (default 0644).  Prints "ok" or "open: <strerror>".
 * Exists so O_EXCL/O_DIRECTORY/O_NOFOLLOW/O_TMPFILE errors can be tested
 * directly rather than through shell redirections.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; int flag; } names[] = {
	{ "rdonly", O_RDONLY }, { "wronly", O_WRONLY }, { "rdwr", O_RDWR },
	{ "creat", O_CREAT }, { "excl", O_EXCL }, { "trunc", O_TRUNC },
	{ "append", O_APPEND }, { "directory", O_DIRECTORY },
	{ "nofollow", O_NOFOLLOW }, { "path", O_PATH },
	{ "tmpfile", O_TMPFILE },
};

int main(int argc, char **argv)
{
	int flags = 0, fd;
	mode_t mode = 0644;
	char *s, *tok;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: t_open path flags [mode]\n");
		return 2;
	}
	s = strdup(argv[2]);
	for (tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(tok, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "t_open: unknown flag %s\n", tok);
			return 2;
		}
		flags |= names[i].flag;
	}
	if (argc == 4)
		mode = strtol(argv[3], NULL, 8);
	fd = open(argv[1], flags, mode);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	printf("ok\n");
	close(fd);
	return 0;
}
