#ifndef C_RAFT_SYSTEM_H
#define C_RAFT_SYSTEM_H

/// Reserves disk blocks for the first `bytes` bytes of the file without changing its size
/// (Linux fallocate with FALLOC_FL_KEEP_SIZE). Returns 0 on success, -1 if unsupported or failed.
int craft_reserve(int fd, long long bytes);

#endif
