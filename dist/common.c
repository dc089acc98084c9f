/* What a job sets up whether or not it runs under MPI: the OpenMP and BLAS threads of this rank. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>

#include "dist/internal.h"

void dist_threads(mn_dist *d)
{
    const char *env = getenv("OMP_NUM_THREADS");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if ((!env || !*env) && d->local_ranks > 1) {
        /* ranks on one node share its cores; more threads than that only fight each other */
        int t = (int)(cores / (d->local_ranks > 0 ? d->local_ranks : 1));
        d->threads = t > 0 ? t : 1;
        omp_set_num_threads(d->threads);
        openblas_set_num_threads(d->threads);
    } else {
        d->threads = omp_get_max_threads();
    }
    snprintf(d->info, sizeof d->info, "rank %d of %d (%d on this node), %d OpenMP thread%s per rank%s, %ld cores, "
             "OpenBLAS %d thread%s", d->comm.rank, d->comm.size, d->local_ranks, d->threads, d->threads == 1 ? "" : "s",
             env && *env ? " (OMP_NUM_THREADS)" : "", cores, openblas_get_num_threads(),
             openblas_get_num_threads() == 1 ? "" : "s");
}

mn_comm *mn_dist_comm(mn_dist *d) { return d->comm.size > 1 ? &d->comm : NULL; }

bool mn_dist_launched(void) { return dist_launched(); }

bool dist_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return true;
    return false;
}
