// readdir_rename DIR OTHER: read DIR with readdir(3) and, after each name
// it returns, rename that name into OTHER and back (so it gets a new place
// in the directory while the read goes on). Stops after 100 times the
// names the directory started with, in case the read never ends.
//
// Prints how many names were returned, how many of them more than once,
// and how many of the names present throughout were never returned.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIR OTHER\n", argv[0]);
    return 2;
  }
  // The names at the start.
  DIR* d = opendir(argv[1]);
  if (!d) {
    perror(argv[1]);
    return 1;
  }
  size_t n = 0, cap = 1024;
  char** names = malloc(cap * sizeof *names);
  struct dirent* e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) names = realloc(names, (cap *= 2) * sizeof *names);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp);

  int* seen = calloc(n, sizeof *seen);
  size_t returned = 0, limit = 100 * (n + 2);
  d = opendir(argv[1]);
  char a[8192], b[8192];
  while ((e = readdir(d)) && returned < limit) {
    returned++;
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char* key = e->d_name;
    char** hit = bsearch(&key, names, n, sizeof *names, cmp);
    if (hit) seen[hit - names]++;
    snprintf(a, sizeof a, "%s/%s", argv[1], e->d_name);
    snprintf(b, sizeof b, "%s/%s", argv[2], e->d_name);
    if (rename(a, b) || rename(b, a)) {
      perror("rename");
      return 1;
    }
  }
  closedir(d);
  size_t dup = 0, missing = 0;
  for (size_t i = 0; i < n; i++) {
    if (seen[i] > 1) dup++;
    if (seen[i] == 0) missing++;
  }
  printf("%zu names; returned %zu entries%s; %zu more than once; %zu never\n", n, returned,
         returned >= limit ? " (stopped: the read did not end)" : "", dup, missing);
  return 0;
}
