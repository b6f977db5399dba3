// seek_whence FILE data|hole OFFSET: lseek(SEEK_DATA or SEEK_HOLE) and
// print the result, or the errno's name (ENXIO, EINVAL, ...).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char* errname(int e) {
  switch (e) {
    case ENXIO: return "ENXIO";
    case EINVAL: return "EINVAL";
    case EOVERFLOW: return "EOVERFLOW";
    default: return strerror(e);
  }
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FILE data|hole OFFSET\n", argv[0]);
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  int whence = strcmp(argv[2], "data") == 0 ? SEEK_DATA : SEEK_HOLE;
  off_t off = strtoll(argv[3], NULL, 0);
  off_t r = lseek(fd, off, whence);
  if (r < 0) printf("SEEK_%s %lld: %s\n", whence == SEEK_DATA ? "DATA" : "HOLE", (long long)off, errname(errno));
  else printf("SEEK_%s %lld: %lld\n", whence == SEEK_DATA ? "DATA" : "HOLE", (long long)off, (long long)r);
  return 0;
}
