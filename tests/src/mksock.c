/*
 * mksock PATH [MODE]
 *
 * Create a socket inode with mknod(2) (S_IFSOCK), which coreutils mknod
 * cannot do.  Nothing listens on it; it is just a filesystem object.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	mode_t mode = 0644;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: mksock path [mode]\n");
		return 2;
	}
	if (argc == 3)
		mode = strtol(argv[2], NULL, 8);
	if (mknod(argv[1], S_IFSOCK | mode, 0) < 0) {
		printf("mknod: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
