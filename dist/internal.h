/* Shared by the two builds of the dist layer (with MPI: dist/mpi.c; without: dist/none.c). */
#ifndef MN_DIST_INTERNAL_H
#define MN_DIST_INTERNAL_H

#include "mn/dist.h"

/* Sets this rank's OpenMP and BLAS threads from the node's cores and d->local_ranks; fills d->info. */
void dist_threads(mn_dist *d);
/* Whether an MPI launcher started this process (its environment variables are set). */
bool dist_launched(void);

#endif
