"""Repo-wide test configuration only."""

import os

# One OpenMP/MKL thread for torch and numpy in this process and in every interpreter its
# tests start (they inherit the environment). Their threads busy-wait: on a 2-core machine
# shared with a second xdist worker, a test's torch loop with 2 threads ran 16x slower than
# with one (test_resume_in_a_fresh_process...: 290 s in the suite, 18 s alone).
# Set before anything imports torch; a value the user set wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
