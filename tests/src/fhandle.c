/*
 * fhandle - file handles through name_to_handle_at / open_by_handle_at.
 *
 *   fhandle save PATH HANDLE_FILE      store PATH's handle in HANDLE_FILE
 *   fhandle cat MOUNT HANDLE_FILE      open the handle (read-only) and copy
 *                                      the file to stdout
 *   fhandle ls MOUNT HANDLE_FILE       open a directory handle, list it
 *                                      (sorted by the caller) and print the
 *                                      path the kernel reconnected it to
 *
 * Errors print "open_by_handle_at: ESTALE" (etc.) on stdout and exit 1, so
 * golden output can show them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case ESTALE: return "ESTALE";
	case ENOENT: return "ENOENT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case ENOTDIR: return "ENOTDIR";
	}
	return strerror(e);
}

static int open_handle(const char *mnt, const char *hfile, int flags)
{
	char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	struct file_handle *fh = (struct file_handle *)buf;
	int mfd, hfd, fd;
	ssize_t n;

	hfd = open(hfile, O_RDONLY);
	if (hfd < 0) { perror(hfile); exit(2); }
	n = read(hfd, buf, sizeof buf);
	close(hfd);
	if (n < (ssize_t)sizeof(struct file_handle)) { fprintf(stderr, "short handle\n"); exit(2); }
	mfd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (mfd < 0) { perror(mnt); exit(2); }
	fd = open_by_handle_at(mfd, fh, flags);
	if (fd < 0) {
		printf("open_by_handle_at: %s\n", errname(errno));
		exit(1);
	}
	close(mfd);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fhandle save|cat|ls ...\n");
		return 2;
	}
	if (!strcmp(argv[1], "save")) {
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
		struct file_handle *fh = (struct file_handle *)buf;
		int mount_id, fd;
		fh->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(AT_FDCWD, argv[2], fh, &mount_id, 0) != 0) {
			printf("name_to_handle_at: %s\n", errname(errno));
			return 1;
		}
		fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, buf, sizeof(*fh) + fh->handle_bytes) < 0) { perror(argv[3]); return 2; }
		close(fd);
		return 0;
	}
	if (!strcmp(argv[1], "cat")) {
		char b[65536];
		ssize_t n;
		int fd = open_handle(argv[2], argv[3], O_RDONLY);
		while ((n = read(fd, b, sizeof b)) > 0)
			if (write(1, b, (size_t)n) != n) return 2;
		if (n < 0) { printf("read: %s\n", errname(errno)); return 1; }
		return 0;
	}
	if (!strcmp(argv[1], "ls")) {
		char link[64], path[4096];
		int fd = open_handle(argv[2], argv[3], O_RDONLY | O_DIRECTORY);
		DIR *d;
		struct dirent *e;
		ssize_t n;
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof path - 1);
		if (n < 0) { perror(link); return 2; }
		path[n] = 0;
		printf("path %s\n", path);
		d = fdopendir(fd);
		if (!d) { perror("fdopendir"); return 2; }
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				printf("entry %s\n", e->d_name);
		closedir(d);
		return 0;
	}
	fprintf(stderr, "fhandle: unknown command %s\n", argv[1]);
	return 2;
}
