/* DeepLabV3+ segmenter: parity with the PyTorch reference (tools/ref/slimmable.py
 * DeepLabV3Plus) on logits and every gradient at full and half width; shapes; cost of the
 * slimmable and the full-width head; every shipped configuration parses. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/config.h"
#include "mn/seg.h"

static mn_segmenter *make(mn_param_set *ps, bool slim_head, int aspp, int low)
{
    mn_seg_config cfg;
    mn_seg_config_default(&cfg, 6);
    cfg.slim_head = slim_head;
    cfg.aspp_channels = aspp;
    cfg.low_level_channels = low;
    mn_param_set_init(ps);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_segmenter *s;
    cr_assert_eq(mn_seg_create(&s, &cfg, ps, &rng), 0, "%s", mn_last_error());
    return s;
}

/* Input of size x size (96, or 128 where the decoder's 3x3 convolutions take the Winograd path) at
 * width w against tools/fixtures/gen_seg.py's float64 reference. */
static void parity(float w, int size)
{
    mn_safetensors st;
    tc_fixture("seg", &st);
    mn_param_set ps;
    mn_segmenter *s = make(&ps, true, 64, 24);
    tc_det_fill(&ps);
    mn_tape t;
    mn_tape_init(&t, 0);
    int64_t xs[4] = {2, 3, size, size};
    mn_var *x = mn_var_new(&t, 4, xs);
    for (int64_t k = 0; k < 2 * 3 * size * size; k++) x->val.data[k] = (float)(1.7 * tc_hash_uniform(54321, k));
    char tag[64], key[128];
    snprintf(tag, sizeof tag, "deeplab%s.w%.2f", size == 96 ? "" : "128", (double)w);
    /* training-mode BN: logits */
    mn_tape_set_grad(&t, false);
    mn_run r = {.tape = &t, .width = w, .training = true};
    mn_var *y = mn_seg_forward_raw(s, &r, x);
    cr_assert(y, "%s", mn_last_error());
    cr_assert_eq(y->val.shape[1], 6);
    cr_assert_eq(y->val.shape[2], size / 4); /* stride 4 */
    snprintf(key, sizeof key, "%s.train_noise", tag);
    float tnoise = tc_get(&st, key).data[0];
    snprintf(key, sizeof key, "%s.train_logits", tag);
    tc_expect_close(y->val.data, tc_get(&st, key).data, mn_tensor_numel(&y->val), 4 * tnoise + 1e-5f, 1e-4f, key);
    /* eval-mode BN (see tools/fixtures/gen_seg.py): logits and every gradient */
    mn_tape_set_grad(&t, true);
    r.training = false;
    y = mn_seg_forward_raw(s, &r, x);
    cr_assert(y, "%s", mn_last_error());
    snprintf(key, sizeof key, "%s.logits_noise", tag);
    float noise = tc_get(&st, key).data[0];
    snprintf(key, sizeof key, "%s.logits", tag);
    tc_expect_close(y->val.data, tc_get(&st, key).data, mn_tensor_numel(&y->val), 4 * noise + 1e-5f, 1e-4f, key);
    snprintf(key, sizeof key, "%s.R", tag);
    mn_param_zero_grad(&ps);
    cr_assert_eq(mn_backward_grad(&t, y, tc_get(&st, key).data), 0, "%s", mn_last_error());
    tc_check_param_grads(&st, tag, &ps, 0.15f);
    mn_tape_free(&t);
    mn_seg_free(s);
    mn_param_set_free(&ps);
    mn_st_free(&st);
}

Test(seg, parity_full_width) { parity(1.0f, 96); }
Test(seg, parity_half_width) { parity(0.5f, 96); }
Test(seg, parity_full_width_winograd_decoder) { parity(1.0f, 128); }

Test(seg, upsampled_logits_and_cost_of_the_head)
{
    mn_param_set a, b;
    mn_segmenter *slim = make(&a, true, 256, 48), *full = make(&b, false, 256, 48);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int64_t xs[4] = {1, 3, 64, 96};
    mn_var *x = mn_var_new(&t, 4, xs);
    mn_tensor_fill(&x->val, 0.2f);
    mn_run r = {.tape = &t, .width = 0.5f, .training = false};
    mn_var *y = mn_seg_forward(slim, &r, x);
    cr_assert(y, "%s", mn_last_error());
    cr_assert(y->val.shape[1] == 6 && y->val.shape[2] == 64 && y->val.shape[3] == 96);
    /* the slimmable head shrinks with the width; a full-width head keeps its own cost, so the
     * whole model's saving is then the backbone's alone */
    int64_t s1, s5, f1, f5;
    cr_assert_eq(mn_seg_flops(slim, 1.0f, 320, 320, &s1, NULL), 0);
    cr_assert_eq(mn_seg_flops(slim, 0.5f, 320, 320, &s5, NULL), 0);
    cr_assert_eq(mn_seg_flops(full, 1.0f, 320, 320, &f1, NULL), 0);
    cr_assert_eq(mn_seg_flops(full, 0.5f, 320, 320, &f5, NULL), 0);
    cr_assert_eq(s1, f1, "at width 1 both heads are the same network");
    cr_assert_lt((double)s5, 0.35 * (double)s1, "slim head at half width: %lld of %lld", (long long)s5, (long long)s1);
    cr_assert_gt((double)f5, 0.6 * (double)f1, "full-width head keeps most of the cost: %lld of %lld", (long long)f5,
                 (long long)f1);
    /* the full-width head's first layers read the sliced backbone features */
    r.width = 0.5f;
    cr_assert_not_null(mn_seg_forward(full, &r, x), "%s", mn_last_error());
    mn_tape_free(&t);
    mn_seg_free(slim);
    mn_seg_free(full);
    mn_param_set_free(&a);
    mn_param_set_free(&b);
}

Test(seg, bad_configurations)
{
    mn_seg_config cfg;
    mn_seg_config_default(&cfg, 0);
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_segmenter *s;
    cr_assert_eq(mn_seg_create(&s, &cfg, &ps, &rng), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "num_classes"), "%s", mn_last_error());
    mn_seg_config_default(&cfg, 5);
    cfg.backbone.output_stride = 32;
    cr_assert_eq(mn_seg_create(&s, &cfg, &ps, &rng), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "output_stride"), "%s", mn_last_error());
    mn_param_set_free(&ps);
}

Test(configs, every_shipped_configuration_parses)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/configs", MN_SOURCE_DIR);
    DIR *d = opendir(dir);
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        mn_config c;
        mn_config_default(&c);
        cr_assert_eq(mn_config_load(path, &c), 0, "%s", mn_last_error());
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 4);
}
