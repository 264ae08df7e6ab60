#define _GNU_SOURCE
#include "CRaftSystem.h"
#include <fcntl.h>

int craft_reserve(int fd, long long bytes) {
#if defined(__linux__)
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes);
#else
    (void)fd;
    (void)bytes;
    return -1;
#endif
}
