// dio_coherence FILE: O_DIRECT and the page cache on one file.
//
//  1. a file handle opened with O_DIRECT can be mmap()ed (fsx and some
//     databases open O_DIRECT and map the same file);
//  2. after a synchronous O_DIRECT write completes, a buffered read (of a
//     range the page cache held before) and the mapping see the new bytes;
//  3. the same after asynchronous O_DIRECT writes (Linux AIO), with
//     buffered readers of the range racing them.
//
// Prints one line per step; a violation prints "FAIL: ..." and exits 1.
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BLK 4096
#define BLOCKS 64

static int fail(const char* what) {
  printf("FAIL: %s (%s)\n", what, strerror(errno));
  exit(1);
}

static void fill(unsigned char* p, size_t len, unsigned char v) { memset(p, v, len); }
static int all(const unsigned char* p, size_t len, unsigned char v) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != v) return 0;
  return 1;
}

static const char* path;
static volatile int racing;

static void* reader(void* arg) {
  (void)arg;
  int fd = open(path, O_RDONLY);
  unsigned char buf[BLK];
  while (racing)
    for (int b = 0; b < BLOCKS; b++)
      if (pread(fd, buf, BLK, (off_t)b * BLK) < 0) break;
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  path = argv[1];
  const size_t size = (size_t)BLK * BLOCKS;
  unsigned char* buf;
  if (posix_memalign((void**)&buf, BLK, size)) fail("posix_memalign");

  // Buffered contents 'a', read back so the page cache holds every page.
  int fb = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fb < 0) fail("open buffered");
  fill(buf, size, 'a');
  if (pwrite(fb, buf, size, 0) != (ssize_t)size) fail("buffered write");
  if (fsync(fb)) fail("fsync");
  if (pread(fb, buf, size, 0) != (ssize_t)size) fail("buffered read");

  int fd = open(path, O_RDWR | O_DIRECT);
  if (fd < 0) fail("open O_DIRECT");
  unsigned char* map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) fail("mmap of an O_DIRECT file handle");
  if (!all(map, size, 'a')) fail("mapping shows other bytes than were written");
  printf("mmap of an O_DIRECT handle: ok\n");

  // 2. Synchronous direct writes of 'b' over the first half.
  fill(buf, size / 2, 'b');
  if (pwrite(fd, buf, size / 2, 0) != (ssize_t)(size / 2)) fail("O_DIRECT write");
  if (pread(fb, buf, size, 0) != (ssize_t)size) fail("buffered read");
  if (!all(buf, size / 2, 'b') || !all(buf + size / 2, size / 2, 'a'))
    fail("buffered read after a synchronous O_DIRECT write returned old bytes");
  if (!all(map, size / 2, 'b')) fail("mapping after a synchronous O_DIRECT write shows old bytes");
  printf("buffered read and mapping after a synchronous O_DIRECT write: new bytes\n");

  // 3. Asynchronous direct writes of 'c', one per block, while readers
  // keep pulling the old pages into the cache.
  aio_context_t ctx = 0;
  if (syscall(SYS_io_setup, BLOCKS, &ctx)) fail("io_setup");
  pthread_t t[2];
  racing = 1;
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, reader, NULL);
  fill(buf, size, 'c');
  struct iocb cbs[BLOCKS], *ptrs[BLOCKS];
  for (int b = 0; b < BLOCKS; b++) {
    memset(&cbs[b], 0, sizeof cbs[b]);
    cbs[b].aio_fildes = (uint32_t)fd;
    cbs[b].aio_lio_opcode = IOCB_CMD_PWRITE;
    cbs[b].aio_buf = (uint64_t)(uintptr_t)(buf + (size_t)b * BLK);
    cbs[b].aio_nbytes = BLK;
    cbs[b].aio_offset = (int64_t)b * BLK;
    ptrs[b] = &cbs[b];
  }
  if (syscall(SYS_io_submit, ctx, BLOCKS, ptrs) != BLOCKS) fail("io_submit");
  struct io_event ev[BLOCKS];
  long got = 0;
  while (got < BLOCKS) {
    long r = syscall(SYS_io_getevents, ctx, 1, BLOCKS - got, ev + got, NULL);
    if (r < 0) fail("io_getevents");
    for (long i = got; i < got + r; i++)
      if (ev[i].res != BLK) {
        errno = ev[i].res < 0 ? (int)-ev[i].res : EIO;
        fail("asynchronous O_DIRECT write");
      }
    got += r;
  }
  racing = 0;
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  unsigned char* check;
  if (posix_memalign((void**)&check, BLK, size)) fail("posix_memalign");
  if (pread(fb, check, size, 0) != (ssize_t)size) fail("buffered read");
  if (!all(check, size, 'c')) fail("buffered read after asynchronous O_DIRECT writes returned old bytes");
  if (!all(map, size, 'c')) fail("mapping after asynchronous O_DIRECT writes shows old bytes");
  printf("buffered read and mapping after asynchronous O_DIRECT writes: new bytes\n");
  syscall(SYS_io_destroy, ctx);
  munmap(map, size);
  close(fd);
  close(fb);
  return 0;
}
