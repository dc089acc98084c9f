/* SGD: trajectories against torch.optim.SGD (tools/fixtures/gen_sgd.py), the optimised
 * update against its reference twin, state that never grows, and save/restore of state. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/sgd.h"
#include "mn/optim.h"

#define STEPS 5

static mn_safetensors fx;

static void load(void) { tc_fixture("sgd", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(sgd, .init = load, .fini = unload);

/* The fixture tensor whose name printf(fmt, ...) makes. */
static mn_tensor get(const char *fmt, ...)
{
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return tc_get(&fx, name);
}

/* w (4, 3) with decay, b (5) without, buf (3) a buffer: all from the fixture's initial values. */
static void make_params(mn_param_set *ps)
{
    mn_param_set_init(ps);
    int64_t sw[2] = {4, 3}, sb[1] = {5}, sf[1] = {3};
    mn_param *w = mn_param_add(ps, "w", 2, sw, MN_PARAM_DECAY);
    mn_param *b = mn_param_add(ps, "b", 1, sb, 0);
    mn_param *f = mn_param_add(ps, "buf", 1, sf, MN_PARAM_BUFFER);
    cr_assert(w && b && f, "%s", mn_last_error());
    memcpy(w->var.val.data, tc_get(&fx, "init.w").data, sizeof(float) * 12);
    memcpy(b->var.val.data, tc_get(&fx, "init.b").data, sizeof(float) * 5);
    memcpy(f->var.val.data, tc_get(&fx, "init.buf").data, sizeof(float) * 3);
}

static void set_grads(mn_param_set *ps, int s)
{
    memcpy(ps->items[0]->var.grad.data, get("g.%d.w", s).data, sizeof(float) * 12);
    memcpy(ps->items[1]->var.grad.data, get("g.%d.b", s).data, sizeof(float) * 5);
}

static void check_values(mn_param_set *ps, const char *cfg, int s)
{
    char what[64];
    snprintf(what, sizeof what, "%s step %d w", cfg, s);
    tc_expect_close(ps->items[0]->var.val.data, get("%s.%d.w", cfg, s).data, 12, 1e-7f, 2e-6f, what);
    snprintf(what, sizeof what, "%s step %d b", cfg, s);
    tc_expect_close(ps->items[1]->var.val.data, get("%s.%d.b", cfg, s).data, 5, 1e-7f, 2e-6f, what);
    tc_expect_close(ps->items[2]->var.val.data, tc_get(&fx, "init.buf").data, 3, 0.0f, 0.0f, "buffer untouched");
}

static void check_momentum(const mn_sgd *o, const char *cfg)
{
    char name[64];
    mn_tensor mw = mn_sgd_momentum(o, 0), mb = mn_sgd_momentum(o, 1);
    cr_assert(mw.data && mb.data);
    cr_assert(mw.ndim == 2 && mw.shape[0] == 4 && mw.shape[1] == 3);
    snprintf(name, sizeof name, "%s.mom.w", cfg);
    tc_expect_close(mw.data, tc_get(&fx, name).data, 12, 1e-7f, 2e-6f, name);
    snprintf(name, sizeof name, "%s.mom.b", cfg);
    tc_expect_close(mb.data, tc_get(&fx, name).data, 5, 1e-7f, 2e-6f, name);
    cr_assert_null(mn_sgd_momentum(o, 2).data, "a buffer has no momentum");
}

static void run_config(const char *cfg_name, mn_sgd_config cfg)
{
    mn_param_set ps;
    make_params(&ps);
    mn_sgd o;
    cr_assert_eq(mn_sgd_init(&o, &ps, &cfg), 0, "%s", mn_last_error());
    size_t cap = o.state.capacity, used = o.state.used;
    cr_assert_eq(o.state.n_grow, 0, "init allocated in more than one block");
    const float *lr = tc_get(&fx, "lr").data;
    for (int s = 0; s < STEPS; s++) {
        set_grads(&ps, s);
        cr_assert_eq(mn_sgd_step(&o, lr[s]), 0, "%s", mn_last_error());
        check_values(&ps, cfg_name, s);
    }
    cr_assert_eq(mn_sgd_steps(&o), STEPS);
    if (cfg.momentum > 0) check_momentum(&o, cfg_name);
    else cr_assert_null(mn_sgd_momentum(&o, 0).data, "no buffers without momentum");
    /* the state arena was sized once: stepping allocates nothing */
    cr_assert_eq(o.state.capacity, cap);
    cr_assert_eq(o.state.used, used);
    cr_assert_eq(o.state.n_grow, 0);
    mn_sgd_free(&o);
    mn_param_set_free(&ps);
}

Test(sgd, nesterov_vs_torch)
{
    run_config("nesterov", (mn_sgd_config){.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f});
}

Test(sgd, plain_momentum_with_dampening_vs_torch)
{
    run_config("plain", (mn_sgd_config){.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weight_decay = 1e-4f});
}

Test(sgd, nesterov_strong_decay_only_on_decay_params_vs_torch)
{
    /* weight_decay 0.05 moves w visibly, so decay applied to b (or not to w) fails at once */
    run_config("nest_wd", (mn_sgd_config){.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.05f});
}

Test(sgd, no_momentum_vs_torch)
{
    run_config("nomom", (mn_sgd_config){.lr = 0.1f, .weight_decay = 0.05f});
}

Test(sgd, state_arena_holds_exactly_the_buffers)
{
    mn_param_set ps;
    make_params(&ps);
    mn_sgd o;
    mn_sgd_config cfg = {.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f};
    cr_assert_eq(mn_sgd_init(&o, &ps, &cfg), 0);
    /* pointer table + 12 floats + 5 floats, each rounded to 64 bytes; nothing for the buffer */
    cr_assert_eq(o.state.used, 3 * 64);
    cr_assert_eq(o.state.capacity, 3 * 64);
    mn_sgd_free(&o);
    mn_param_set_free(&ps);
}

Test(sgd, checkpoint_restore_continues_the_trajectory)
{
    mn_sgd_config cfg = {.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.05f};
    const float *lr = tc_get(&fx, "lr").data;
    mn_param_set a, b;
    make_params(&a);
    make_params(&b);
    mn_sgd oa, ob;
    cr_assert_eq(mn_sgd_init(&oa, &a, &cfg), 0);
    for (int s = 0; s < 3; s++) {
        set_grads(&a, s);
        cr_assert_eq(mn_sgd_step(&oa, lr[s]), 0);
    }
    /* "save" a's parameters, momentum buffers and step count, "load" them into a fresh b */
    cr_assert_eq(mn_sgd_init(&ob, &b, &cfg), 0);
    for (int i = 0; i < 3; i++) {
        memcpy(b.items[i]->var.val.data, a.items[i]->var.val.data,
               sizeof(float) * (size_t)mn_tensor_numel(&a.items[i]->var.val));
        mn_tensor src = mn_sgd_momentum(&oa, i), dst = mn_sgd_momentum(&ob, i);
        cr_assert_eq(!src.data, !dst.data);
        if (src.data) memcpy(dst.data, src.data, sizeof(float) * (size_t)mn_tensor_numel(&src));
    }
    cr_assert_eq(mn_sgd_set_steps(&ob, mn_sgd_steps(&oa)), 0);
    mn_sgd_free(&oa);
    for (int s = 3; s < STEPS; s++) {
        set_grads(&b, s);
        cr_assert_eq(mn_sgd_step(&ob, lr[s]), 0);
        check_values(&b, "nest_wd", s);
    }
    check_momentum(&ob, "nest_wd");
    cr_assert_neq(mn_sgd_set_steps(&ob, -1), 0);
    mn_sgd_free(&ob);
    mn_param_set_free(&a);
    mn_param_set_free(&b);
}

Test(sgd, rejects_bad_configurations)
{
    mn_param_set ps;
    make_params(&ps);
    mn_sgd o;
    mn_sgd_config c = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .nesterov = true};
    cr_assert_eq(mn_sgd_init(&o, &ps, &c), MN_EINVAL, "nesterov with dampening");
    c = (mn_sgd_config){.lr = 0.1f, .nesterov = true};
    cr_assert_eq(mn_sgd_init(&o, &ps, &c), MN_EINVAL, "nesterov without momentum");
    c = (mn_sgd_config){.lr = 0.1f, .momentum = -0.5f};
    cr_assert_eq(mn_sgd_init(&o, &ps, &c), MN_EINVAL);
    c = (mn_sgd_config){.lr = 0.1f, .weight_decay = NAN};
    cr_assert_eq(mn_sgd_init(&o, &ps, &c), MN_EINVAL);
    c = (mn_sgd_config){.lr = 0.1f, .momentum = 0.9f};
    cr_assert_eq(mn_sgd_init(&o, &ps, &c), 0);
    cr_assert_eq(mn_sgd_step(&o, -1.0f), MN_EINVAL);
    cr_assert_eq(mn_sgd_step(&o, INFINITY), MN_EINVAL);
    cr_assert_eq(mn_sgd_steps(&o), 0, "a refused step must not count");
    mn_sgd_free(&o);
    mn_param_set_free(&ps);
}

/* ---- optimised kernel against its reference twin ---- */

static void twins(int64_t m, const mn_sgd_hyper *h, uint64_t seed)
{
    float *p1 = tc_random(seed, m, -2.0f, 2.0f), *b1 = tc_random(seed + 1, m, -1.0f, 1.0f);
    float *g = tc_random(seed + 2, m, -1.0f, 1.0f);
    float *p2 = malloc(sizeof(float) * (size_t)m), *b2 = malloc(sizeof(float) * (size_t)m);
    memcpy(p2, p1, sizeof(float) * (size_t)m);
    memcpy(b2, b1, sizeof(float) * (size_t)m);
    for (int rep = 0; rep < 2; rep++) {
        mn_sgd_update(p1, b1, g, m, h);
        mn_sgd_update_ref(p2, b2, g, m, h);
    }
    tc_expect_close(p1, p2, m, 1e-7f, 1e-6f, "parameters");
    tc_expect_close(b1, b2, m, 1e-7f, 1e-6f, "momentum");
    free(p1), free(b1), free(g), free(p2), free(b2);
}

Test(sgd, update_matches_reference)
{
    /* 100003 elements takes the parallel path, 37 the serial one */
    const int64_t sizes[2] = {100003, 37};
    for (int i = 0; i < 2; i++) {
        mn_sgd_hyper hs[5] = {
            {.lr = 0.1f, .weight_decay = 0.01f},
            {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true, .first = true},
            {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.2f, .weight_decay = 0.01f, .first = true},
            {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true},
            {.lr = 0.1f, .momentum = 0.8f, .dampening = 0.3f},
        };
        for (int j = 0; j < 5; j++) twins(sizes[i], &hs[j], (uint64_t)(100 * i + 10 * j));
    }
}

/* clip_grad_norm_ worked by hand: gradients (3, 4) and (12) have joint norm 13. */
Test(sgd, clip_grad_norm_by_hand)
{
    mn_param_set ps;
    mn_param_set_init(&ps);
    const int64_t s2 = 2, s1 = 1;
    mn_param *a = mn_param_add(&ps, "a", 1, &s2, MN_PARAM_DECAY);
    mn_param *b = mn_param_add(&ps, "b", 1, &s1, 0);
    mn_param *f = mn_param_add(&ps, "running_mean", 1, &s1, MN_PARAM_BUFFER);
    cr_assert(a && b && f, "%s", mn_last_error());
    a->var.grad.data[0] = 3.0f;
    a->var.grad.data[1] = 4.0f;
    b->var.grad.data[0] = 12.0f;
    if (f->var.grad.data) f->var.grad.data[0] = 1000.0f; /* a buffer's gradient, if any, is not counted */
    double norm = 0.0;
    /* below the cap: measured, untouched */
    cr_assert_eq(mn_grad_clip_norm(&ps, 20.0f, &norm), 0, "%s", mn_last_error());
    cr_assert_float_eq(norm, 13.0, 1e-9);
    cr_assert_eq(a->var.grad.data[0], 3.0f);
    cr_assert_eq(b->var.grad.data[0], 12.0f);
    /* above it: every gradient scaled by 6.5 / (13 + 1e-6) */
    cr_assert_eq(mn_grad_clip_norm(&ps, 6.5f, &norm), 0, "%s", mn_last_error());
    cr_assert_float_eq(norm, 13.0, 1e-9);
    double k = 6.5 / (13.0 + 1e-6);
    cr_assert_float_eq(a->var.grad.data[0], (float)(3.0 * k), 1e-6);
    cr_assert_float_eq(a->var.grad.data[1], (float)(4.0 * k), 1e-6);
    cr_assert_float_eq(b->var.grad.data[0], (float)(12.0 * k), 1e-6);
    cr_assert_eq(mn_grad_clip_norm(&ps, 100.0f, &norm), 0, "%s", mn_last_error());
    cr_assert_float_eq(norm, 6.5, 1e-5);
    /* a non-finite gradient is named and nothing is scaled */
    b->var.grad.data[0] = INFINITY;
    float a0 = a->var.grad.data[0];
    cr_assert_neq(mn_grad_clip_norm(&ps, 1.0f, &norm), 0);
    cr_assert(strstr(mn_last_error(), "gradient of b"), "%s", mn_last_error());
    cr_assert_eq(a->var.grad.data[0], a0);
    cr_assert_neq(mn_grad_clip_norm(&ps, 0.0f, &norm), 0, "a cap of 0 is refused");
    mn_param_set_free(&ps);
}
