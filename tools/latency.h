/* Milliseconds per image on this machine: calibrate --latency times every configuration of a
 * query table as predict runs one image, and bench shares the median it keeps. */
#ifndef MN_TOOLS_LATENCY_H
#define MN_TOOLS_LATENCY_H

#include <stddef.h>

#include "mn/model.h"
#include "mn/progress.h"

/* Warm-up runs before each configuration's timed runs: the first sizes the tape's arena, the
 * second touches the one block the arena then consolidates into (as bench does). */
enum { MN_LATENCY_WARMUP = 2 };

/* The median of v (n >= 1); sorts v. */
double mn_median(double *v /* (n) */, int n);

/* A short name of the machine: the CPU model of /proc/cpuinfo ("model name", or "Hardware" /
 * "cpu model" where there is none), else uname's machine type, else "". */
void mn_machine_name(char *out, size_t n);

/* Times every configuration of m's query table at batch 1 on a synthetic image of the input the
 * configuration costs (a segmenter's or classifier's h x w; a detector's typical image, run through
 * its resize, RPN, box head and NMS): the entry's BN statistics selected, MN_LATENCY_WARMUP runs,
 * then the median of `runs` of the task's predict. Stores each entry's ms and the table's timing
 * record (OpenMP threads, runs, machine); leaves the model with its trained BN statistics.
 * Progress to rep (NULL: none). Fails when the table is empty. */
int mn_latency_time_table(mn_model *m, int runs, const char *machine, const mn_reporter *rep);

#endif
