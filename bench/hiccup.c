/* The machine's own stalls (bench/README.md, "Files"): read the clock in a loop for 5 s and
 * report the gaps between two readings, which are the times this thread did not run.
 *
 *   gcc -O2 -o /tmp/hiccup bench/hiccup.c && taskset -c 0 /tmp/hiccup
 *
 * Run one on each core at once to see what a loaded machine does to any request in flight. */
#include <stdio.h>
#include <time.h>

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

int main(void) {
    long start = now_ns(), last = start, over_100us = 0, over_1ms = 0, in_gaps = 0, max = 0;
    for (;;) {
        long now = now_ns(), gap = now - last;
        last = now;
        if (gap > 100000) {
            over_100us++;
            in_gaps += gap;
        }
        if (gap > 1000000) over_1ms++;
        if (gap > max) max = gap;
        if (now - start > 5000000000L) break;
    }
    printf("gaps > 100 us: %ld, > 1 ms: %ld, time in gaps > 100 us: %.2f%%, longest %.3f ms\n",
           over_100us, over_1ms, 100.0 * in_gaps / 5e9, max / 1e6);
    return 0;
}
