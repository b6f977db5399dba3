/*
 * readdir_test DIR N
 *
 * Directory iteration semantics that `ls` never exercises:
 *
 *  1. create N files in DIR (which must be empty) and check one readdir
 *     pass returns each exactly once;
 *  2. telldir/seekdir: seeking back to a saved position yields the same
 *     entry and the same following entries;
 *  3. delete every second entry while the stream stays open; seeking to
 *     the saved position of every surviving entry must still return that
 *     entry (offsets are stable across deletions of other entries);
 *  4. "rm -r" pattern: read the directory and unlink each entry right
 *     after it is returned, while also creating new files; every original
 *     entry must be seen exactly once and nothing may be skipped.
 *
 * Prints one line per step; any violation prints "FAIL: ..." and exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n;
static char dirpath[4096];

static int name_index(const char *name)
{
	char *end;
	long i;

	if (name[0] != 'f')
		return -1;
	i = strtol(name + 1, &end, 10);
	if (*end || i < 0 || i >= n)
		return -1;
	return (int)i;
}

static void fail(const char *msg, const char *name)
{
	printf("FAIL: %s%s%s\n", msg, name ? ": " : "", name ? name : "");
	exit(1);
}

static void path_of(char *buf, const char *prefix, int i)
{
	snprintf(buf, 4200, "%s/%s%05d", dirpath, prefix, i);
}

int main(int argc, char **argv)
{
	DIR *d;
	struct dirent *de;
	long *pos;		/* telldir() before entry k of pass 1 */
	int *order;		/* file index of entry k of pass 1 */
	int *seen;
	int k, i, count;
	char p[4200];

	if (argc != 3) {
		fprintf(stderr, "usage: readdir_test dir n\n");
		return 2;
	}
	snprintf(dirpath, sizeof(dirpath), "%s", argv[1]);
	n = atoi(argv[2]);
	pos = calloc(n + 1, sizeof(*pos));
	order = calloc(n + 1, sizeof(*order));
	seen = calloc(n, sizeof(*seen));

	for (i = 0; i < n; i++) {
		int fd;

		path_of(p, "f", i);
		fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0)
			fail("create", strerror(errno));
		close(fd);
	}

	/* 1. one full pass */
	d = opendir(dirpath);
	if (!d)
		fail("opendir", strerror(errno));
	count = 0;
	for (;;) {
		long here = telldir(d);

		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		i = name_index(de->d_name);
		if (i < 0)
			fail("unexpected entry", de->d_name);
		if (seen[i]++)
			fail("entry returned twice", de->d_name);
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			fail("wrong d_type", de->d_name);
		pos[count] = here;
		order[count++] = i;
	}
	if (errno)
		fail("readdir", strerror(errno));
	if (count != n)
		fail("pass 1 did not return every entry", NULL);
	printf("pass 1: %d entries, each exactly once\n", count);

	/* 2. seekdir back to saved positions */
	for (k = 0; k < n; k += n / 37 + 1) {
		int j;

		seekdir(d, pos[k]);
		for (j = k; j < n && j < k + 10; j++) {
			de = readdir(d);
			if (!de || name_index(de->d_name) != order[j])
				fail("seekdir to saved position returned another entry",
				     de ? de->d_name : "(end)");
		}
	}
	printf("seekdir: positions reproducible\n");

	/* 3. delete every second entry (in iteration order), keep stream */
	for (k = 1; k < n; k += 2) {
		path_of(p, "f", order[k]);
		if (unlink(p) < 0)
			fail("unlink", strerror(errno));
	}
	for (k = 0; k < n; k += 2) {
		seekdir(d, pos[k]);
		do {
			de = readdir(d);
		} while (de && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")));
		if (!de || name_index(de->d_name) != order[k])
			fail("after deletions seekdir to a surviving entry returned",
			     de ? de->d_name : "(end)");
	}
	printf("seekdir after deleting half: surviving entries found\n");
	closedir(d);

	/* 4. unlink each entry right after reading it, creating new ones */
	memset(seen, 0, n * sizeof(*seen));
	d = opendir(dirpath);
	if (!d)
		fail("opendir", strerror(errno));
	count = 0;
	k = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_name[0] == 'g')	/* created below, may or may not show */
			continue;
		i = name_index(de->d_name);
		if (i < 0)
			fail("unexpected entry", de->d_name);
		if (seen[i]++)
			fail("entry returned twice while deleting", de->d_name);
		path_of(p, "f", i);
		if (unlink(p) < 0)
			fail("unlink during readdir", strerror(errno));
		count++;
		if (count % 10 == 0) {
			int fd;

			path_of(p, "g", k++);
			fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0)
				fail("create during readdir", strerror(errno));
			close(fd);
		}
	}
	closedir(d);
	if (count != (n + 1) / 2)
		fail("rm during readdir missed entries", NULL);
	/* Only the g* files may be left. */
	d = opendir(dirpath);
	count = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == 'f')
			fail("entry left behind", de->d_name);
		if (de->d_name[0] == 'g')
			count++;
	}
	closedir(d);
	if (count != k)
		fail("files created during readdir are missing", NULL);
	printf("unlink while reading: every entry seen once, none left\n");
	return 0;
}
