/* torchvision Matcher (IoU thresholds with low-quality matches) and
 * BalancedPositiveNegativeSampler, over plain int arrays. */
#include <stdlib.h>

#include "mn/boxes.h"

int mn_match(const mn_matcher *mt, int *matches /* (N) */, const float *iou /* (M, N) */, int m, int n)
{
    if (m < 0 || n < 0) return mn_error(MN_EINVAL, "mn_match: IoU matrix of %d x %d", m, n);
    if (!(mt->low <= mt->high))
        return mn_error(MN_EINVAL, "mn_match: low threshold %g above high threshold %g", (double)mt->low,
                        (double)mt->high);
    if (n == 0) return 0;
    if (m == 0) {
        /* no ground truth: every prediction is background, as torchvision's heads special-case */
        for (int j = 0; j < n; j++) matches[j] = MN_MATCH_BELOW;
        return 0;
    }
    float *best = malloc(sizeof *best * (size_t)n);
    int *arg = malloc(sizeof *arg * (size_t)n);
    if (!best || !arg) {
        free(best);
        free(arg);
        return mn_error(MN_ENOMEM, "mn_match: cannot allocate scratch for %d predictions", n);
    }
    /* best gt per prediction; rows are walked in order so the first gt wins a tie */
    for (int j = 0; j < n; j++) {
        best[j] = iou[j];
        arg[j] = 0;
    }
    for (int i = 1; i < m; i++) {
        const float *row = iou + (size_t)i * (size_t)n;
        for (int j = 0; j < n; j++)
            if (row[j] > best[j]) {
                best[j] = row[j];
                arg[j] = i;
            }
    }
    for (int j = 0; j < n; j++) {
        if (best[j] < mt->low) matches[j] = MN_MATCH_BELOW;
        else if (best[j] < mt->high) matches[j] = MN_MATCH_BETWEEN;
        else matches[j] = arg[j];
    }
    if (mt->allow_low_quality) {
        /* each gt's best predictions (all ties) get their own best gt back, whatever it is */
        for (int i = 0; i < m; i++) {
            const float *row = iou + (size_t)i * (size_t)n;
            float top = row[0];
            for (int j = 1; j < n; j++)
                if (row[j] > top) top = row[j];
            for (int j = 0; j < n; j++)
                if (row[j] == top) matches[j] = arg[j];
        }
    }
    free(best);
    free(arg);
    return 0;
}

/* Selection sampling (Knuth's algorithm S): exactly `want` of the `have` indices with
 * matches satisfying pick, uniformly, emitted in ascending order. */
static int select_subset(int *out, const int *matches, int n, int have, int want, bool positive, mn_rng *rng)
{
    int k = 0;
    for (int j = 0; j < n && k < want; j++) {
        bool is = positive ? matches[j] >= 0 : matches[j] == MN_MATCH_BELOW;
        if (!is) continue;
        /* take j with probability (still wanted) / (still available) */
        if (mn_rng_int(rng, 0, have - 1) < want - k) out[k++] = j;
        have--;
    }
    return k;
}

int mn_sample_pos_neg(int *pos /* (batch) */, int *n_pos, int *neg /* (batch) */, int *n_neg,
                      const int *matches /* (N) */, int n, int batch, double pos_fraction, mn_rng *rng)
{
    if (n < 0 || batch < 0)
        return mn_error(MN_EINVAL, "mn_sample_pos_neg: %d predictions, batch %d (must be >= 0)", n, batch);
    if (!(pos_fraction >= 0.0 && pos_fraction <= 1.0))
        return mn_error(MN_EINVAL, "mn_sample_pos_neg: positive fraction %g outside [0, 1]", pos_fraction);
    int np = 0, nn = 0;
    for (int j = 0; j < n; j++) {
        np += matches[j] >= 0;
        nn += matches[j] == MN_MATCH_BELOW;
    }
    /* int() truncation of the product, as torchvision computes it */
    int want_pos = (int)((double)batch * pos_fraction);
    if (want_pos > np) want_pos = np;
    int want_neg = batch - want_pos;
    if (want_neg > nn) want_neg = nn;
    *n_pos = select_subset(pos, matches, n, np, want_pos, true, rng);
    *n_neg = select_subset(neg, matches, n, nn, want_neg, false, rng);
    MN_ASSERT(*n_pos == want_pos && *n_neg == want_neg);
    return 0;
}
