/* mutualnet flops: multiply-accumulates and parameters of a model at one width and size. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mn/backbone.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet flops [--model mobilenet_v2|mobilenet_v1|resnet50] [--width W] [--size S | --size HxW]\n"
               "                       [--classes N] [--json]\n\n"
               "Counts the multiply-accumulates of the convolution and linear layers for one image (what the\n"
               "MutualNet paper calls FLOPs) and the parameters those layers use at width W.\n"
               "Defaults: mobilenet_v2, width 1.0, size 224, 1000 classes. --json prints {\"macs\": N, \"params\": N}.\n");
}

static void human(double v, char *buf, size_t n)
{
    if (v >= 1e9) snprintf(buf, n, "%.3fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, n, "%.1fM", v / 1e6);
    else snprintf(buf, n, "%.1fk", v / 1e3);
}

int mn_cmd_flops(int argc, char **argv)
{
    const char *cmd = "flops", *model = "mobilenet_v2";
    double width = 1.0;
    int h = 224, w = 224, classes = 1000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--model")) {
            if (!(model = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--width")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_float(cmd, a, v, 0.01, 1.0, &width))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--classes")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_int(cmd, a, v, 1, 100000, &classes))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--size")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
            int n = sscanf(v, "%dx%d", &h, &w);
            if (n == 1) w = h;
            if (n < 1 || h < 32 || w < 32 || h > 8192 || w > 8192 || h % 32 || w % 32) {
                fprintf(stderr, "mutualnet flops: --size expects S or HxW, multiples of 32 in [32, 8192], not \"%s\"\n", v);
                return MN_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "mutualnet flops: unknown option %s (see mutualnet flops --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    mn_backbone_config cfg = {.num_classes = classes, .output_stride = 32};
    if (mn_arch_parse(model, &cfg.arch)) {
        fprintf(stderr, "mutualnet flops: %s\n", mn_last_error());
        return MN_EXIT_USAGE;
    }
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 0);
    mn_backbone *b = NULL;
    int64_t macs = 0, params = 0;
    int rc = mn_backbone_create(&b, &cfg, &ps, "", &rng);
    if (!rc) rc = mn_backbone_flops(b, (float)width, h, w, true, &macs, &params);
    mn_backbone_free(b);
    mn_param_set_free(&ps);
    if (rc) {
        fprintf(stderr, "mutualnet flops: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    if (json) {
        printf("{\"macs\": %lld, \"params\": %lld}\n", (long long)macs, (long long)params);
    } else {
        char m[32], p[32];
        human((double)macs, m, sizeof m);
        human((double)params, p, sizeof p);
        printf("%s width %.3g at %dx%d: %s multiply-accumulates (%lld), %s parameters (%lld)\n", model, width, h, w, m,
               (long long)macs, p, (long long)params);
    }
    return MN_EXIT_OK;
}
