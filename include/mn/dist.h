/* The communicator of a launched job (mn/comm.h): MPI when this build has it and the process was
 * started by mpirun, mpiexec or srun, else one process. For programs (tools/), which own the
 * process: the library itself only takes an mn_comm. */
#ifndef MN_DIST_H
#define MN_DIST_H

#include <stdbool.h>

#include "comm.h"

typedef struct mn_dist {
    mn_comm comm;
    bool mpi;              /* MPI was started (and is finished by mn_dist_close) */
    int local_ranks;       /* ranks on this node */
    int threads;           /* OpenMP threads this rank uses */
    char info[256];        /* "rank 0 of 2 (2 on this node), 1 OpenMP thread per rank ..." */
} mn_dist;

/* Starts MPI when launched by an MPI launcher (the environment says so) and this build has MPI;
 * one process otherwise. Unless OMP_NUM_THREADS is set, each rank takes the node's cores divided
 * by the ranks on the node for OpenMP and BLAS. Returns 0 or an error (a launched job in a build
 * without MPI is refused: every process would train alone). */
MN_API int mn_dist_open(mn_dist *d);
/* The communicator to hand to the library: NULL for one process. */
MN_API mn_comm *mn_dist_comm(mn_dist *d);
/* Finishes MPI (after a failure on this rank, aborts the whole job so that no rank waits). */
MN_API void mn_dist_close(mn_dist *d, int rc);
/* Whether this build can run as an MPI job. */
MN_API bool mn_dist_has_mpi(void);
/* Whether an MPI launcher (mpirun, mpiexec, srun) started this process. */
MN_API bool mn_dist_launched(void);

#endif
