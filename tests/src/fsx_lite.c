/*
 * fsx_lite - a small fsx-style file system exerciser.
 *
 * usage: fsx_lite [-N numops] [-S seed] [-l maxfilelen] [-o maxoplen]
 *                 [-M] [-Z] [-d modelfile] FILE
 *
 * Performs random operations on FILE and checks every read against an
 * in-memory model of the expected contents:
 *
 *   write       pwrite of random bytes at a random (unaligned) offset
 *   read        pread and compare
 *   truncate    ftruncate up or down (new bytes must read as zero)
 *   falloc      fallocate mode 0 (may extend the file) or KEEP_SIZE
 *   punch       FALLOC_FL_PUNCH_HOLE (range must read as zero)
 *   zero        FALLOC_FL_ZERO_RANGE (optionally KEEP_SIZE)
 *   mapread     mmap + compare            (disabled with -M)
 *   mapwrite    mmap + memcpy + msync     (disabled with -M)
 *   fsync       fsync / fdatasync
 *   reopen      close and open the file again
 *
 * With -Z (as fsx -Z), writes and half of the reads go through a second
 * descriptor opened with O_DIRECT, block-aligned, and the mapped reads and
 * writes map that O_DIRECT descriptor: buffered, direct and mapped access
 * to one file, mixed, as some databases do.
 *
 * Like fsx, an fallocate mode or mmap that fails with EOPNOTSUPP (or
 * ENODEV for mmap) is switched off for the rest of the run, with a note on
 * stderr.  The whole file is compared with the model every 5000 ops and at
 * the end.  Any mismatch prints the operation log and exits 1.  With -d
 * the expected contents are written to MODELFILE, so the caller can
 * compare again after a remount.
 *
 * stdout gets exactly one line, "fsx_lite: N operations ok", on success,
 * so the output is the same on every filesystem.  The random generator is
 * our own (xorshift64*), so a seed gives the same ops on every libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/falloc.h>

enum {
	OP_READ, OP_WRITE, OP_TRUNCATE, OP_FALLOC, OP_PUNCH, OP_ZERO,
	OP_MAPREAD, OP_MAPWRITE, OP_FSYNC, OP_REOPEN, OP_MAX
};
static const char *opnames[] = {
	"read", "write", "truncate", "falloc", "punch", "zero",
	"mapread", "mapwrite", "fsync", "reopen"
};
/* relative weights of the operations */
/* (fsync is rare: on a copy-on-write fs each one can commit a transaction) */
static const int weights[OP_MAX] = { 250, 300, 80, 50, 70, 70, 50, 50, 3, 5 };
static int disabled[OP_MAX];

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static const char *fname;
static int fd = -1;
static int dfd = -1;		/* -Z: the O_DIRECT descriptor */
static int use_direct;
static unsigned char *good;	/* expected contents; zero beyond file_size */
static unsigned char *buf;
static off_t file_size;
static off_t maxfilelen = 2 << 20;
static size_t maxoplen = 64 << 10;
static long pagesize;
static long opnum;

#define LOGSZ 32
static struct { long num; int op; off_t off; off_t len; off_t size; } oplog[LOGSZ];

static void log_op(int op, off_t off, off_t len)
{
	int i = opnum % LOGSZ;

	oplog[i].num = opnum;
	oplog[i].op = op;
	oplog[i].off = off;
	oplog[i].len = len;
	oplog[i].size = file_size;
}

static void dump_log(void)
{
	long i;

	fprintf(stderr, "last operations (num op offset len size-after):\n");
	for (i = opnum - LOGSZ + 1; i <= opnum; i++) {
		int j;

		if (i < 0)
			continue;
		j = i % LOGSZ;
		fprintf(stderr, "  %6ld %-9s 0x%jx 0x%jx 0x%jx\n", oplog[j].num,
			opnames[oplog[j].op], (intmax_t)oplog[j].off,
			(intmax_t)oplog[j].len, (intmax_t)oplog[j].size);
	}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("fsx_lite: FAILED at op %ld: ", opnum);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	dump_log();
	exit(1);
}

static void check_buf(const unsigned char *got, off_t off, size_t len,
		      const char *what)
{
	size_t i;

	if (!memcmp(got, good + off, len))
		return;
	for (i = 0; i < len; i++)
		if (got[i] != good[off + i])
			break;
	die("%s: data mismatch at offset 0x%jx (read 0x%02x, expected 0x%02x), "
	    "op range 0x%jx+0x%zx, file size 0x%jx", what, (intmax_t)(off + i),
	    got[i], good[off + i], (intmax_t)off, len, (intmax_t)file_size);
}

static void check_size(void)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		die("fstat: %s", strerror(errno));
	if (st.st_size != file_size)
		die("size is 0x%jx, expected 0x%jx", (intmax_t)st.st_size,
		    (intmax_t)file_size);
}

static void do_open(void)
{
	fd = open(fname, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		die("open %s: %s", fname, strerror(errno));
	if (use_direct) {
		dfd = open(fname, O_RDWR | O_DIRECT);
		if (dfd < 0)
			die("open %s O_DIRECT: %s", fname, strerror(errno));
	}
}

/* -Z: the whole blocks around [*off, *off + *len) below `limit`. */
static int align_range(off_t *off, size_t *len, off_t limit)
{
	off_t s = *off & ~(off_t)4095, e = (*off + (off_t)*len + 4095) & ~(off_t)4095;

	if (e > (limit & ~(off_t)4095))
		e = limit & ~(off_t)4095;
	if (e <= s)
		return 0;
	*off = s;
	*len = (size_t)(e - s);
	return 1;
}

static void full_check(const char *what)
{
	off_t off = 0;

	check_size();
	while (off < file_size) {
		size_t len = file_size - off > (off_t)maxoplen ? maxoplen
							       : (size_t)(file_size - off);
		ssize_t r = pread(fd, buf, len, off);

		if (r != (ssize_t)len)
			die("%s: short read %zd at 0x%jx: %s", what, r,
			    (intmax_t)off, r < 0 ? strerror(errno) : "");
		check_buf(buf, off, len, what);
		off += len;
	}
	/* reading at EOF returns 0 bytes */
	if (pread(fd, buf, 1, file_size) != 0)
		die("%s: read at EOF did not return 0", what);
}

static void disable(int op, const char *why)
{
	if (!disabled[op])
		fprintf(stderr, "fsx_lite: %s not supported (%s), disabled\n",
			opnames[op], why);
	disabled[op] = 1;
}

static void pick_range(off_t *off, size_t *len, off_t limit)
{
	/* mostly small ops, sometimes up to maxoplen; often unaligned */
	size_t l = rnd_below(4) ? rnd_below(4096) + 1 : rnd_below(maxoplen) + 1;
	off_t o;

	if (limit <= 0) {
		*off = 0;
		*len = 0;
		return;
	}
	if ((off_t)l > limit)
		l = limit;
	o = rnd_below(limit - l + 1);
	if (rnd_below(3) == 0) {	/* block aligned sometimes */
		o &= ~(off_t)4095;
	}
	*off = o;
	*len = l;
}

static void op_read(void)
{
	off_t off;
	size_t len;
	ssize_t r;

	if (file_size == 0)
		return;
	pick_range(&off, &len, file_size);
	if (use_direct && rnd_below(2) && align_range(&off, &len, file_size)) {
		log_op(OP_READ, off, len);
		r = pread(dfd, buf, len, off);
	} else {
		log_op(OP_READ, off, len);
		r = pread(fd, buf, len, off);
	}
	if (r != (ssize_t)len)
		die("read 0x%jx+0x%zx returned %zd: %s", (intmax_t)off, len, r,
		    r < 0 ? strerror(errno) : "short read");
	check_buf(buf, off, len, "read");
}

static void op_write(void)
{
	off_t off;
	size_t len, i;
	ssize_t r;

	pick_range(&off, &len, maxfilelen);
	if (use_direct && !align_range(&off, &len, maxfilelen))
		return;
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd() >> 56) | 1;	/* never 0 */
	log_op(OP_WRITE, off, len);
	r = pwrite(use_direct ? dfd : fd, buf, len, off);
	if (r != (ssize_t)len)
		die("write 0x%jx+0x%zx returned %zd: %s", (intmax_t)off, len, r,
		    r < 0 ? strerror(errno) : "short write");
	memcpy(good + off, buf, len);
	if (off + (off_t)len > file_size)
		file_size = off + len;
}

static void op_truncate(void)
{
	off_t newsize = rnd_below(maxfilelen + 1);

	if (rnd_below(4) == 0)
		newsize &= ~(off_t)4095;
	log_op(OP_TRUNCATE, newsize, 0);
	if (ftruncate(fd, newsize) < 0)
		die("ftruncate 0x%jx: %s", (intmax_t)newsize, strerror(errno));
	if (newsize < file_size)
		memset(good + newsize, 0, file_size - newsize);
	file_size = newsize;
}

static int do_fallocate(int op, int mode, off_t off, size_t len)
{
	if (fallocate(fd, mode, off, len) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS) {
			disable(op, strerror(errno));
			return -1;
		}
		die("fallocate mode 0x%x 0x%jx+0x%zx: %s", mode, (intmax_t)off,
		    len, strerror(errno));
	}
	return 0;
}

static void op_falloc(void)
{
	int keep = rnd_below(2);
	off_t off;
	size_t len;

	pick_range(&off, &len, maxfilelen);
	if (!len)
		return;
	log_op(OP_FALLOC, off, len);
	if (do_fallocate(OP_FALLOC, keep ? FALLOC_FL_KEEP_SIZE : 0, off, len))
		return;
	if (!keep && off + (off_t)len > file_size)
		file_size = off + len;	/* new bytes are zero */
}

static void op_punch(void)
{
	off_t off, end;
	size_t len;

	pick_range(&off, &len, maxfilelen);
	if (!len)
		return;
	log_op(OP_PUNCH, off, len);
	if (do_fallocate(OP_PUNCH, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 off, len))
		return;
	end = off + len < file_size ? off + (off_t)len : file_size;
	if (end > off)
		memset(good + off, 0, end - off);
}

static void op_zero(void)
{
	int keep = rnd_below(2);
	off_t off, end;
	size_t len;

	pick_range(&off, &len, maxfilelen);
	if (!len)
		return;
	log_op(OP_ZERO, off, len);
	if (do_fallocate(OP_ZERO, FALLOC_FL_ZERO_RANGE |
			 (keep ? FALLOC_FL_KEEP_SIZE : 0), off, len))
		return;
	if (!keep && off + (off_t)len > file_size)
		file_size = off + len;
	end = off + len < file_size ? off + (off_t)len : file_size;
	if (end > off)
		memset(good + off, 0, end - off);
}

static void op_mapread(void)
{
	off_t off, pg;
	size_t len;
	char *p;

	if (file_size == 0)
		return;
	pick_range(&off, &len, file_size);
	log_op(OP_MAPREAD, off, len);
	pg = off & ~(off_t)(pagesize - 1);
	p = mmap(NULL, len + (off - pg), PROT_READ, MAP_SHARED, use_direct ? dfd : fd, pg);
	if (p == MAP_FAILED) {
		if (errno == ENODEV || errno == EOPNOTSUPP) {
			disable(OP_MAPREAD, strerror(errno));
			return;
		}
		die("mmap read: %s", strerror(errno));
	}
	check_buf((unsigned char *)p + (off - pg), off, len, "mapread");
	munmap(p, len + (off - pg));
}

static void op_mapwrite(void)
{
	off_t off, pg;
	size_t len, i;
	char *p;

	pick_range(&off, &len, maxfilelen);
	if (!len)
		return;
	log_op(OP_MAPWRITE, off, len);
	if (off + (off_t)len > file_size) {
		/* like fsx: extend first, mmap cannot grow a file */
		if (ftruncate(fd, off + len) < 0)
			die("ftruncate for mapwrite: %s", strerror(errno));
		file_size = off + len;
	}
	pg = off & ~(off_t)(pagesize - 1);
	p = mmap(NULL, len + (off - pg), PROT_READ | PROT_WRITE, MAP_SHARED,
		 use_direct ? dfd : fd, pg);
	if (p == MAP_FAILED) {
		if (errno == ENODEV || errno == EOPNOTSUPP) {
			disable(OP_MAPWRITE, strerror(errno));
			return;
		}
		die("mmap write: %s", strerror(errno));
	}
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd() >> 56) | 1;
	memcpy(p + (off - pg), buf, len);
	memcpy(good + off, buf, len);
	/* write back synchronously now and then; otherwise leave the dirty
	 * pages to writeback, which later reads must still see */
	if (msync(p, len + (off - pg), rnd_below(4) ? MS_ASYNC : MS_SYNC) < 0)
		die("msync: %s", strerror(errno));
	munmap(p, len + (off - pg));
}

static void op_fsync(void)
{
	log_op(OP_FSYNC, 0, 0);
	if ((rnd_below(2) ? fsync(fd) : fdatasync(fd)) < 0)
		die("fsync: %s", strerror(errno));
}

static void op_reopen(void)
{
	log_op(OP_REOPEN, 0, 0);
	if (close(fd) < 0)
		die("close: %s", strerror(errno));
	if (dfd >= 0 && close(dfd) < 0)
		die("close: %s", strerror(errno));
	do_open();
}

int main(int argc, char **argv)
{
	long numops = 100000;
	const char *modelfile = NULL;
	int total_weight = 0, c, i;

	rng_state = 0x9e3779b97f4a7c15ULL;
	while ((c = getopt(argc, argv, "N:S:l:o:MZd:")) != -1) {
		switch (c) {
		case 'N': numops = atol(optarg); break;
		case 'S': rng_state ^= strtoull(optarg, NULL, 0) * 0x2545F4914F6CDD1DULL; break;
		case 'l': maxfilelen = atol(optarg); break;
		case 'o': maxoplen = atol(optarg); break;
		case 'M': disabled[OP_MAPREAD] = disabled[OP_MAPWRITE] = 1; break;
		case 'Z': use_direct = 1; break;
		case 'd': modelfile = optarg; break;
		default: goto usage;
		}
	}
	if (argc - optind != 1 || maxfilelen <= 0 || maxoplen == 0)
		goto usage;
	if (!rng_state)
		rng_state = 1;
	fname = argv[optind];
	pagesize = sysconf(_SC_PAGESIZE);
	good = calloc(maxfilelen, 1);
	/* aligned for O_DIRECT, with room for an aligned range around maxoplen */
	if (posix_memalign((void **)&buf, 4096,
			   (maxoplen > (size_t)maxfilelen ? maxoplen : (size_t)maxfilelen) + 8192))
		buf = NULL;
	if (!good || !buf)
		die("out of memory");

	do_open();
	if (ftruncate(fd, 0) < 0)
		die("initial truncate: %s", strerror(errno));
	file_size = 0;

	for (i = 0; i < OP_MAX; i++)
		total_weight += weights[i];
	for (opnum = 0; opnum < numops; opnum++) {
		int r = rnd_below(total_weight), op = 0;

		while (r >= weights[op])
			r -= weights[op++];
		if (disabled[op])
			continue;
		switch (op) {
		case OP_READ: op_read(); break;
		case OP_WRITE: op_write(); break;
		case OP_TRUNCATE: op_truncate(); break;
		case OP_FALLOC: op_falloc(); break;
		case OP_PUNCH: op_punch(); break;
		case OP_ZERO: op_zero(); break;
		case OP_MAPREAD: op_mapread(); break;
		case OP_MAPWRITE: op_mapwrite(); break;
		case OP_FSYNC: op_fsync(); break;
		case OP_REOPEN: op_reopen(); break;
		}
		check_size();
		if (opnum % 5000 == 4999)
			full_check("periodic full check");
	}
	opnum = numops;
	full_check("final check");
	close(fd);
	do_open();
	full_check("check after reopen");
	close(fd);

	if (modelfile) {
		FILE *f = fopen(modelfile, "w");

		if (!f || fwrite(good, 1, file_size, f) != (size_t)file_size ||
		    fclose(f))
			die("writing model %s: %s", modelfile, strerror(errno));
	}
	printf("fsx_lite: %ld operations ok\n", numops);
	return 0;
usage:
	fprintf(stderr, "usage: fsx_lite [-N numops] [-S seed] [-l maxfilelen] "
			"[-o maxoplen] [-M] [-Z] [-d modelfile] file\n");
	return 2;
}
