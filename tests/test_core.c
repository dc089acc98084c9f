/* Core: rng, arenas, tensor views, tape mechanics that need no kernels. */
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/arena.h"
#include "mn/param.h"
#include "mn/rng.h"
#include "mn/tape.h"

Test(rng, same_seed_same_stream)
{
    mn_rng a, b;
    mn_rng_seed(&a, 42);
    mn_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) cr_assert_eq(mn_rng_u64(&a), mn_rng_u64(&b));
    mn_rng_seed(&b, 43);
    int same = 0;
    for (int i = 0; i < 1000; i++) same += mn_rng_u64(&a) == mn_rng_u64(&b);
    cr_assert_eq(same, 0);
}

Test(rng, split_is_deterministic_and_leaves_parent_alone)
{
    mn_rng p, q;
    mn_rng_seed(&p, 7);
    q = p;
    mn_rng c1 = mn_rng_split(&p, 3), c2 = mn_rng_split(&p, 3), c3 = mn_rng_split(&p, 4);
    cr_assert_eq(memcmp(&p, &q, sizeof p), 0, "split advanced the parent");
    uint64_t x1 = mn_rng_u64(&c1), x2 = mn_rng_u64(&c2), x3 = mn_rng_u64(&c3);
    cr_assert_eq(x1, x2);
    cr_assert_neq(x1, x3);
    cr_assert_neq(x1, mn_rng_u64(&p));
}

Test(rng, ranges_and_moments)
{
    mn_rng r;
    mn_rng_seed(&r, 1);
    int hist[5] = {0};
    double sum = 0, sum2 = 0, usum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        int k = mn_rng_int(&r, 2, 6);
        cr_assert(k >= 2 && k <= 6);
        hist[k - 2]++;
        float u = mn_rng_uniform(&r);
        cr_assert(u >= 0.0f && u < 1.0f);
        usum += u;
        double z = mn_rng_normal(&r);
        sum += z;
        sum2 += z * z;
    }
    for (int k = 0; k < 5; k++) cr_assert(hist[k] > n / 5 * 0.97 && hist[k] < n / 5 * 1.03, "bucket %d: %d", k, hist[k]);
    cr_assert_float_eq(usum / n, 0.5, 0.005);
    cr_assert_float_eq(sum / n, 0.0, 0.01);
    cr_assert_float_eq(sum2 / n, 1.0, 0.02);
}

Test(arena, alignment_growth_and_consolidation)
{
    mn_arena a;
    mn_arena_init(&a, "test", 0);
    for (int pass = 0; pass < 5; pass++) {
        for (int i = 0; i < 40; i++) {
            char *p = mn_arena_alloc(&a, 100000 + (size_t)i);
            cr_assert(p);
            cr_assert_eq((uintptr_t)p % 64, 0);
            memset(p, i, 100000);
        }
        if (pass == 0) cr_assert_gt(a.n_grow, 1);
        size_t grown = a.n_grow;
        mn_arena_reset(&a);
        if (pass > 0) cr_assert_eq(a.n_grow, grown, "pass %d grew the arena", pass);
    }
    cr_assert_geq(a.capacity, a.peak);
    cr_assert_lt(a.capacity, 2 * a.peak, "consolidated block should be the high-water size");
    mn_arena_free(&a);
}

Test(tensor, narrow_copy_and_contiguity)
{
    float buf[2 * 3 * 4];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    int64_t shape[3] = {2, 3, 4};
    mn_tensor t = mn_tensor_view(buf, 3, shape);
    cr_assert(mn_tensor_is_contiguous(&t));
    mn_tensor v = mn_tensor_narrow(t, 1, 1, 2); /* t[:, 1:3, :] */
    cr_assert(!mn_tensor_is_contiguous(&v));
    cr_assert_eq(mn_tensor_numel(&v), 16);
    float out[16];
    int64_t s2[3] = {2, 2, 4};
    mn_tensor o = mn_tensor_view(out, 3, s2);
    mn_tensor_copy(&o, &v);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 4; c++) cr_assert_eq(out[a * 8 + b * 4 + c], (float)(a * 12 + (b + 1) * 4 + c));
    char s[64];
    cr_assert_str_eq(mn_shape_str(&v, s, sizeof s), "[2, 2, 4]");
}

/* A prefix view of a parameter shares its memory; a contiguous copy of it routes the
 * gradient back into exactly that slice of the full gradient. */
Test(tape, prefix_view_gradient_lands_in_slice)
{
    mn_param_set ps;
    mn_param_set_init(&ps);
    int64_t shape[2] = {4, 5};
    mn_param *p = mn_param_add(&ps, "w", 2, shape, MN_PARAM_DECAY);
    cr_assert(p);
    for (int i = 0; i < 20; i++) p->var.val.data[i] = (float)i;
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *rows = mn_var_prefix(&t, &p->var, 0, 3);
    mn_var *v = mn_var_prefix(&t, rows, 1, 2); /* w[:3, :2] */
    cr_assert(v && v->requires_grad);
    cr_assert_eq(v->val.data, p->var.val.data);
    mn_var *c = mn_contiguous(&t, v);
    cr_assert(c && c != v && mn_tensor_is_contiguous(&c->val));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) cr_assert_eq(c->val.data[i * 2 + j], (float)(i * 5 + j));
    float dy[6] = {1, 2, 3, 4, 5, 6};
    cr_assert_eq(mn_backward_grad(&t, c, dy), 0, "%s", mn_last_error());
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++) {
            float want = (i < 3 && j < 2) ? dy[i * 2 + j] : 0.0f;
            cr_assert_eq(p->var.grad.data[i * 5 + j], want, "grad[%d][%d]", i, j);
        }
    /* a second pass accumulates */
    mn_tape_reset(&t);
    c = mn_contiguous(&t, mn_var_prefix(&t, mn_var_prefix(&t, &p->var, 0, 3), 1, 2));
    cr_assert_eq(mn_backward_grad(&t, c, dy), 0);
    cr_assert_eq(p->var.grad.data[5 + 1], 8.0f);
    mn_param_zero_grad(&ps);
    cr_assert_eq(p->var.grad.data[6], 0.0f);
    cr_assert_eq(mn_param_count(&ps), 20);
    mn_tape_free(&t);
    mn_param_set_free(&ps);
}

Test(tape, no_grad_records_nothing_and_detach_cuts)
{
    mn_param_set ps;
    mn_param_set_init(&ps);
    int64_t shape[2] = {3, 3};
    mn_param *p = mn_param_add(&ps, "w", 2, shape, 0);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    mn_var *c = mn_contiguous(&t, mn_var_prefix(&t, &p->var, 1, 2));
    cr_assert(c && !c->requires_grad && c->node == NULL);
    cr_assert_eq(t.n_nodes, 0);
    mn_tape_set_grad(&t, true);
    c = mn_contiguous(&t, mn_var_prefix(&t, &p->var, 1, 2));
    cr_assert_eq(t.n_nodes, 1);
    mn_var *d = mn_detach(&t, c);
    cr_assert(!d->requires_grad && d->node == NULL && d->val.data == c->val.data);
    mn_tape_free(&t);
    mn_param_set_free(&ps);
}

Test(tape, errors_are_sticky_and_named)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    cr_assert_null(mn_contiguous(&t, NULL));
    cr_assert_neq(mn_backward(&t, NULL), 0);
    cr_assert(strstr(mn_last_error(), "no loss"));
    mn_param_set ps;
    mn_param_set_init(&ps);
    int64_t shape[1] = {4};
    cr_assert(mn_param_add(&ps, "b", 1, shape, 0));
    cr_assert_null(mn_param_add(&ps, "b", 1, shape, 0));
    cr_assert(strstr(mn_last_error(), "registered twice"));
    cr_assert_null(mn_var_prefix(&t, &mn_param_find(&ps, "b")->var, 0, 5));
    cr_assert(strstr(mn_last_error(), "cannot take 5 of 4"));
    mn_param_set_free(&ps);
    mn_tape_free(&t);
}
