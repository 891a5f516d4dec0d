/* CRC-32C (Castagnoli), the checksum of log records, snapshots and frames.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing table
 * otherwise; both give identical results (tested). */
#ifndef MERIDIAN_COMMON_CRC32C_H
#define MERIDIAN_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over n bytes. crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t n);
/* The portable table version, exposed so tests can compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t n);
/* 1 if crc32c() uses the CPU instruction. */
int crc32c_hw_available(void);

#endif
