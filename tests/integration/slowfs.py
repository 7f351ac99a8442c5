#!/usr/bin/env python3
"""A read-only FUSE view of SRC at MNT whose every read waits DELAY
seconds first: a slow disk for tests/integration/test_aio.py.

    slowfs.py SRC MNT DELAY     (runs until unmounted; needs python3-fusepy)

Each open drops the kernel's page cache of the file (FUSE's default
without keep_cache), so every request starts cold; reads are served in
parallel threads, as a disk with a queue would.
"""

import errno
import os
import sys
import time

import fusepy


class SlowFS(fusepy.Operations):
    def __init__(self, src, delay):
        self.src = src
        self.delay = delay

    def _p(self, path):
        return os.path.join(self.src, path.lstrip("/"))

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_size", "st_uid",
                                            "st_gid", "st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise fusepy.FuseOSError(errno.EROFS)
        return os.open(self._p(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        time.sleep(self.delay)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == "__main__":
    src, mnt, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    fusepy.FUSE(SlowFS(src, delay), mnt, foreground=True, nothreads=False, ro=True,
                allow_other=True)
