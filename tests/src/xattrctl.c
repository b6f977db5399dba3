/*
 * xattrctl - setxattr/getxattr with control over flags and value size.
 *
 *   xattrctl set [-c|-r] [-h] PATH NAME VALUE     value given literally
 *   xattrctl set [-c|-r] [-h] -s SIZE PATH NAME   SIZE bytes of a pattern
 *   xattrctl get [-h] PATH NAME                   prints "size=N md5-ish"
 *
 * -c: XATTR_CREATE (fail with EEXIST if present)
 * -r: XATTR_REPLACE (fail with ENODATA if absent)
 * -h: operate on a symlink itself (lsetxattr/lgetxattr)
 *
 * setfattr cannot pass the create/replace flags and cannot pass values
 * close to 64 KiB on the command line, hence this helper.  Errors print
 * "setxattr: <strerror>" / "getxattr: <strerror>" and exit 1.  get prints
 * the value size and a simple checksum, so large values can be verified.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/xattr.h>

static void usage(void)
{
	fprintf(stderr, "usage: xattrctl set [-c|-r] [-h] [-s size] path name [value]\n"
			"       xattrctl get [-h] path name\n");
	exit(2);
}

static unsigned long cksum(const unsigned char *p, size_t n)
{
	unsigned long h = 5381;

	while (n--)
		h = (h * 33) ^ *p++;
	return h & 0xffffffffUL;
}

int main(int argc, char **argv)
{
	int flags = 0, nofollow = 0, c;
	long size = -1;
	const char *cmd;

	if (argc < 2)
		usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "crhs:")) != -1) {
		switch (c) {
		case 'c': flags |= XATTR_CREATE; break;
		case 'r': flags |= XATTR_REPLACE; break;
		case 'h': nofollow = 1; break;
		case 's': size = atol(optarg); break;
		default: usage();
		}
	}
	if (!strcmp(cmd, "set")) {
		const char *path, *name;
		char *val;
		size_t len;
		int ret;

		if (size >= 0 ? argc - optind != 2 : argc - optind != 3)
			usage();
		path = argv[optind];
		name = argv[optind + 1];
		if (size >= 0) {
			len = size;
			val = malloc(len + 1);
			for (size_t i = 0; i < len; i++)
				val[i] = 'a' + (i * 7 + i / 251) % 26;
		} else {
			val = argv[optind + 2];
			len = strlen(val);
		}
		ret = nofollow ? lsetxattr(path, name, val, len, flags)
			       : setxattr(path, name, val, len, flags);
		if (ret < 0) {
			printf("setxattr: %s\n", strerror(errno));
			return 1;
		}
		return 0;
	}
	if (!strcmp(cmd, "get")) {
		const char *path, *name;
		unsigned char *buf;
		ssize_t n;

		if (argc - optind != 2)
			usage();
		path = argv[optind];
		name = argv[optind + 1];
		buf = malloc(65536 + 1);
		n = nofollow ? lgetxattr(path, name, buf, 65536)
			     : getxattr(path, name, buf, 65536);
		if (n < 0) {
			printf("getxattr: %s\n", strerror(errno));
			return 1;
		}
		printf("size=%zd sum=%08lx\n", n, cksum(buf, n));
		return 0;
	}
	usage();
	return 2;
}
