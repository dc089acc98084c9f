/* The tape with real ops: a value used twice, accumulation over passes, detach, no-grad, and
 * memory that settles after the first iteration of a small network. */
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/optim.h"
#include "mn/slim.h"

Test(tape, a_value_used_twice_gets_both_gradients)
{
    int64_t s[1] = {3};
    float xv[3] = {1.0f, -2.0f, 3.0f};
    mn_var *x = tc_leaf(xv, 1, s, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    /* y = relu(x) + 2x: dy/dx = [x > 0] + 2 */
    mn_var *y = mn_add(&t, mn_relu(&t, x), mn_scale(&t, x, 2.0f));
    float dy[3] = {1, 1, 1};
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0, "%s", mn_last_error());
    cr_assert_float_eq(x->grad.data[0], 3.0f, 1e-7);
    cr_assert_float_eq(x->grad.data[1], 2.0f, 1e-7);
    cr_assert_float_eq(x->grad.data[2], 3.0f, 1e-7);
    /* x + x: the same input twice in one op */
    memset(x->grad.data, 0, sizeof(float) * 3);
    mn_tape_reset(&t);
    y = mn_add(&t, x, x);
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    for (int i = 0; i < 3; i++) cr_assert_float_eq(x->grad.data[i], 2.0f, 1e-7);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(tape, gradients_accumulate_over_passes_and_detach_cuts)
{
    int64_t s[1] = {2};
    float xv[2] = {0.5f, 2.0f};
    mn_var *x = tc_leaf(xv, 1, s, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    float dy[2] = {1, 1};
    for (int pass = 0; pass < 3; pass++) { /* three passes, as three sub-networks */
        mn_tape_reset(&t);
        mn_var *y = mn_scale(&t, x, (float)(pass + 1));
        cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    }
    cr_assert_float_eq(x->grad.data[0], 6.0f, 1e-6); /* 1 + 2 + 3 */
    /* a detached copy carries no gradient back */
    mn_tape_reset(&t);
    mn_var *d = mn_detach(&t, mn_scale(&t, x, 5.0f));
    mn_var *y = mn_add(&t, d, x);
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    cr_assert_float_eq(x->grad.data[0], 7.0f, 1e-6); /* only the direct path added 1 */
    cr_assert_float_eq(d->val.data[1], 10.0f, 1e-6);
    /* no-grad: nothing recorded, nothing flows */
    mn_tape_reset(&t);
    mn_tape_set_grad(&t, false);
    y = mn_relu(&t, mn_scale(&t, x, 2.0f));
    cr_assert_eq(t.n_nodes, 0);
    cr_assert(!y->requires_grad);
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    cr_assert_float_eq(x->grad.data[0], 7.0f, 1e-6);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

/* 100 training iterations of a small slimmable net at alternating widths and sizes: the
 * activation arena grows during the first iteration only, and parameter, gradient and
 * optimiser memory never. */
Test(tape, memory_settles_after_the_first_iteration)
{
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 3);
    mn_slim_cba a, b;
    mn_slim_linear fc;
    cr_assert_eq(mn_slim_cba_init(&a, &ps, &rng, "a", 3, 16, 3, 2, 1, false, 6), 0);
    cr_assert_eq(mn_slim_cba_init(&b, &ps, &rng, "b", 16, 32, 3, 1, 1, false, 1), 0);
    cr_assert_eq(mn_slim_linear_init(&fc, &ps, &rng, "fc", 32, 4), 0);
    mn_sgd opt;
    mn_sgd_config oc = {0.1f, 0.9f, 0.0f, true, 1e-4f};
    cr_assert_eq(mn_sgd_init(&opt, &ps, &oc), 0);
    size_t params = ps.values.capacity, grads = ps.grads.capacity, state = opt.state.capacity;
    mn_tape t;
    mn_tape_init(&t, 0);
    float *img = tc_random(9, 4 * 3 * 32 * 32, -1, 1);
    int32_t labels[4] = {0, 1, 2, 3};
    size_t grow_after_first = 0, cap_after_first = 0;
    double first_loss = 0, last_loss = 0;
    for (int it = 0; it < 100; it++) {
        mn_param_zero_grad(&ps);
        static const float widths[2] = {1.0f, 0.5f};
        for (int k = 0; k < 2; k++) { /* the full net at 32x32, then half width at 16x16 */
            mn_tape_reset(&t);
            mn_var *x = mn_var_wrap(&t, mn_tensor_4d(img, 4, 3, 32, 32));
            if (k) x = mn_resize_bilinear(&t, x, 16, 16, true);
            mn_run r = {.tape = &t, .width = widths[k], .training = true, .bn_momentum = k ? 0.0f : 0.1f};
            mn_var *h = mn_slim_cba_forward(&b, &r, mn_slim_cba_forward(&a, &r, x, mn_slim_channels(16, widths[k], 1)),
                                            mn_slim_channels(32, widths[k], 1));
            int64_t s2[2] = {4, h ? h->val.shape[1] : 0};
            mn_var *loss = mn_cross_entropy(
                &t, mn_slim_linear_forward(&fc, &r, mn_reshape(&t, mn_global_avg_pool(&t, h), 2, s2), 4), labels, -1);
            cr_assert_eq(mn_backward(&t, loss), 0, "%s", mn_last_error());
            if (k == 0) {
                if (it == 0) first_loss = loss->val.data[0];
                last_loss = loss->val.data[0];
            }
        }
        cr_assert_eq(mn_sgd_step(&opt, 0.05f), 0);
        if (it == 0) {
            mn_tape_reset(&t); /* consolidates the first iteration's blocks */
            grow_after_first = t.arena.n_grow;
            cap_after_first = t.arena.capacity;
        }
    }
    mn_tape_reset(&t);
    cr_assert_eq(t.arena.n_grow, grow_after_first, "the activation arena grew after the first iteration");
    cr_assert_eq(t.arena.capacity, cap_after_first);
    cr_assert_eq(ps.values.capacity, params);
    cr_assert_eq(ps.grads.capacity, grads);
    cr_assert_eq(opt.state.capacity, state);
    cr_assert_lt(last_loss, 0.5 * first_loss, "a net this small memorises 4 images: %g -> %g", first_loss, last_loss);
    free(img);
    mn_tape_free(&t);
    mn_sgd_free(&opt);
    mn_param_set_free(&ps);
}
