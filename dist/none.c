/* The dist layer of a build without MPI: one process. */
#include <string.h>

#include "dist/internal.h"

bool mn_dist_has_mpi(void) { return false; }

int mn_dist_open(mn_dist *d)
{
    memset(d, 0, sizeof *d);
    d->comm.size = 1;
    d->local_ranks = 1;
    if (dist_launched())
        return mn_error(MN_EINVAL, "started by an MPI launcher, but this build has no MPI (install libopenmpi-dev "
                                   "and reconfigure): every process would run the whole job alone");
    dist_threads(d);
    return 0;
}

void mn_dist_close(mn_dist *d, int rc) { (void)d, (void)rc; }
