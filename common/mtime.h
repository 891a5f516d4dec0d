/* Raw OS clocks, for deadlines, timeouts and benchmarks. Anything that needs
 * an uncertainty bound or a commit timestamp uses timesvc/, not this. */
#ifndef MERIDIAN_COMMON_MTIME_H
#define MERIDIAN_COMMON_MTIME_H

#include <stdint.h>
#include <time.h>

#define MTIME_US 1000LL
#define MTIME_MS 1000000LL
#define MTIME_S  1000000000LL

/* CLOCK_MONOTONIC in nanoseconds: never jumps, meaningless across processes. */
static inline int64_t mtime_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MTIME_S + ts.tv_nsec;
}

/* CLOCK_REALTIME in nanoseconds since the Unix epoch. */
static inline int64_t mtime_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * MTIME_S + ts.tv_nsec;
}

#endif
