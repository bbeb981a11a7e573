/* A main() for the harnesses where libFuzzer is not available (gcc, Apple
 * clang): runs LLVMFuzzerTestOneInput once over each file named on the
 * command line, or over every file in each directory named.  Built with
 * ASan/UBSan it replays the committed corpus as a regression test; see
 * tests/reliability/test_fuzz_core.py. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long replayed;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        perror(path);
        exit(2);
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL) {
                fprintf(stderr, "%s: out of memory\n", path);
                exit(2);
            }
        }
        n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    replayed++;
}

static void replay(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(path, &st) < 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    d = opendir(path);
    if (d == NULL) {
        perror(path);
        exit(2);
    }
    while ((e = readdir(d)) != NULL) {
        char *child;
        size_t n;

        if (e->d_name[0] == '.')
            continue;
        n = strlen(path) + strlen(e->d_name) + 2;
        child = malloc(n);
        if (child == NULL)
            exit(2);
        snprintf(child, n, "%s/%s", path, e->d_name);
        replay(child);
        free(child);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++)
        replay(argv[i]);
    printf("replayed %ld inputs\n", replayed);
    return 0;
}
