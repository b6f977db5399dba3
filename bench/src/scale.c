// Scale benchmark helper (bench/scale.sh): create or stat N files, in one
// directory or spread over a tree of 1,000 names per directory, or make a
// file of N extents. One process, no fork per file, so the filesystem is
// what is measured. Prints the seconds taken.
//
//   scale create flat|tree DIR N
//   scale stat   flat|tree DIR N
//   scale rename flat|tree DIR N      (10,000 files spread over the set, renamed
//                                      in their directory and back: 20,000 renames)
//   scale extents FILE N          (4 KiB written every 8 KiB: N extents)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void path_of(char* out, size_t n, const char* dir, int tree, long i) {
  if (tree) snprintf(out, n, "%s/d%ld/f%ld", dir, i / 1000, i);
  else snprintf(out, n, "%s/f%ld", dir, i);
}

int main(int argc, char** argv) {
  if (argc != 5 && !(argc == 4 && strcmp(argv[1], "extents") == 0)) {
    fprintf(stderr, "usage: scale create|stat flat|tree DIR N | scale extents FILE N\n");
    return 2;
  }
  char p[4096];
  double t0 = now();
  if (strcmp(argv[1], "extents") == 0) {
    long n = atol(argv[3]);
    int fd = open(argv[2], O_CREAT | O_WRONLY, 0644);
    if (fd < 0) { perror(argv[2]); return 1; }
    char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    for (long i = 0; i < n; i++) {
      buf[0] = (char)i;
      if (pwrite(fd, buf, sizeof buf, (off_t)i * 8192) != (ssize_t)sizeof buf) { perror("pwrite"); return 1; }
    }
    if (fsync(fd) != 0) { perror("fsync"); return 1; }
    close(fd);
  } else if (strcmp(argv[1], "rename") == 0) {
    int tree = strcmp(argv[2], "tree") == 0;
    long n = atol(argv[4]), k = n < 10000 ? n : 10000;
    char q[4096];
    for (int back = 0; back < 2; back++) {
      for (long j = 0; j < k; j++) {
        long i = j * (n / k);
        path_of(p, sizeof p, argv[3], tree, i);
        snprintf(q, sizeof q, "%s.renamed", p);
        if (back ? rename(q, p) : rename(p, q)) { perror("rename"); return 1; }
      }
    }
  } else {
    int tree = strcmp(argv[2], "tree") == 0;
    const char* dir = argv[3];
    long n = atol(argv[4]);
    int create = strcmp(argv[1], "create") == 0;
    for (long i = 0; i < n; i++) {
      if (tree && i % 1000 == 0 && create) {
        snprintf(p, sizeof p, "%s/d%ld", dir, i / 1000);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) { perror(p); return 1; }
      }
      path_of(p, sizeof p, dir, tree, i);
      if (create) {
        int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) { perror(p); return 1; }
        close(fd);
      } else {
        struct stat st;
        if (lstat(p, &st) != 0) { perror(p); return 1; }
      }
    }
  }
  printf("%.3f\n", now() - t0);
  return 0;
}
