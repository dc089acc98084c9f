/* What every communicator user needs beyond the raw collectives (mn/comm.h). */
#include "mn/comm.h"

int mn_comm_agree(mn_comm *c, int rc)
{
    if (!c || c->size < 2) return rc;
    /* the lowest failing rank, or size when none failed */
    double first = rc ? (double)c->rank : (double)c->size;
    int e = c->allreduce_f64(c, &first, 1, MN_COMM_MIN);
    if (e) return e;
    if (rc || first >= c->size) return rc;
    return mn_error(MN_EINVAL, "rank %d failed (its message is in its own output)", (int)first);
}
