// append FILE COUNT SIZE: COUNT appends of SIZE bytes through one
// descriptor (O_APPEND); prints the mean microseconds per append.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FILE COUNT SIZE\n", argv[0]);
    return 2;
  }
  long count = atol(argv[2]);
  size_t size = (size_t)atol(argv[3]);
  char* buf = malloc(size);
  for (size_t i = 0; i < size; i++) buf[i] = (char)('a' + i % 26);
  int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < count; i++)
    if (write(fd, buf, size) != (ssize_t)size) {
      perror("write");
      return 1;
    }
  clock_gettime(CLOCK_MONOTONIC, &b);
  close(fd);
  double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3;
  printf("%.2f\n", us / (double)count);
  return 0;
}
