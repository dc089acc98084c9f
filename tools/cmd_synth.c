/* mutualnet synth: write the synthetic shapes data set (the work is mn_synth_generate). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>

#include "args.h"
#include "commands.h"
#include "mn/synth.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mutualnet synth --out DIR [--images N] [--size HxW] [--seed S] [--classes LIST]\n"
            "                       [--format jpg|png | --png] [--quality Q] [--val F] [--max-objects M] [--force]\n"
            "                       [--min-visible F] [--large-objects] [--classification]\n\n"
            "Writes a detection + segmentation data set of shapes (circle, square, triangle, star, ring) in the\n"
            "formats real data sets use. Same arguments, byte-identical output.\n\n"
            "  --out DIR          output folder; must be empty or absent unless --force\n"
            "  --images N         images in total, train + val (default 300)\n"
            "  --size HxW         image height x width, as everywhere in mutualnet (default 320x320)\n"
            "  --seed S           random seed, 0 .. 2^64-1 (default 0)\n"
            "  --classes LIST     comma-separated subset, e.g. circle,ring (default: all five)\n"
            "  --format jpg|png   image format (default jpg; labels are always PNG); --png is --format png\n"
            "  --quality Q        JPEG quality 1..100 (default 90)\n"
            "  --val F            fraction of images in the val split, [0, 1) (default 0.2)\n"
            "  --max-objects M    objects per non-empty image, 1..%d (default 6)\n"
            "  --min-visible F    share of each object that later objects must leave visible, 0.05..1\n"
            "                     (default 0.4; 1: objects never overlap)\n"
            "  --force            write into a non-empty DIR, replacing files of the same names\n"
            "  --large-objects    every object covers 8-35%% of the image, its centre in the middle 40%%\n"
            "                     of each side (default: COCO's small / medium / large mix, anywhere)\n"
            "  --classification   write an image classification set instead (one large object per\n"
            "                     image, --max-objects ignored)\n\n"
            "Layout: DIR/images/{train,val}/NNNNNN.jpg, DIR/labels/{train,val}/NNNNNN.png (0 background,\n"
            "1..K classes, 255 ignore border), DIR/annotations/instances_{train,val}.json (COCO),\n"
            "DIR/splits/{train,val}.txt, DIR/classes.txt.\n"
            "With --classification (the imagefolder data set kind): DIR/{train,val}/<class>/NNNNNN.jpg and\n"
            "DIR/classes.txt (one class name per line); the images without objects are not written.\n\n"
            "exit status: 0 written, 1 failed, 2 usage error\n",
            MN_SYNTH_MAX_OBJECTS);
}

static bool parse_size(const char *s, int *h, int *w)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (errno || end == s || (*end != 'x' && *end != 'X')) return false;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (errno || end == t || *end || a < 32 || a > 8192 || b < 32 || b > 8192) return false;
    *h = (int)a;
    *w = (int)b;
    return true;
}

static bool parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-') return false;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end) return false;
    *out = (uint64_t)v;
    return true;
}

int mn_cmd_synth(int argc, char **argv)
{
    const char *cmd = "synth";
    mn_synth_config c;
    mn_synth_config_default(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--force")) {
            c.force = true;
        } else if (!strcmp(a, "--png")) {
            c.png = true;
        } else if (!strcmp(a, "--classification")) {
            c.classification = true;
        } else if (!strcmp(a, "--large-objects")) {
            c.large_objects = true;
        } else if (!strcmp(a, "--out")) {
            if (!(c.out_dir = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--images")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_int(cmd, a, v, 1, 1000000, &c.n_images))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--size")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
            if (!parse_size(v, &c.height, &c.width)) {
                fprintf(stderr, "mutualnet synth: --size expects HxW with each side in [32, 8192], not \"%s\"\n", v);
                return MN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
            if (!parse_seed(v, &c.seed)) {
                fprintf(stderr, "mutualnet synth: --seed expects a whole number in [0, 2^64), not \"%s\"\n", v);
                return MN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--classes")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
            if (mn_synth_set_classes(&c, v)) {
                fprintf(stderr, "mutualnet synth: %s\n", mn_last_error());
                return MN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--format")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
            if (!strcmp(v, "jpg") || !strcmp(v, "jpeg")) c.png = false;
            else if (!strcmp(v, "png")) c.png = true;
            else {
                fprintf(stderr, "mutualnet synth: --format expects jpg or png, not \"%s\"\n", v);
                return MN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--quality")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_int(cmd, a, v, 1, 100, &c.jpeg_quality))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--val")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_float(cmd, a, v, 0, 0.99, &c.val_fraction))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--min-visible")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_float(cmd, a, v, 0.05, 1, &c.min_visible))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--max-objects")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) ||
                !mn_arg_int(cmd, a, v, 1, MN_SYNTH_MAX_OBJECTS, &c.max_objects))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet synth: unknown argument %s (see mutualnet synth --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!c.out_dir) {
        fprintf(stderr, "mutualnet synth: --out DIR is required (see mutualnet synth --help)\n");
        return MN_EXIT_USAGE;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mn_synth_stats st;
    if (mn_synth_generate(&c, &st)) {
        fprintf(stderr, "mutualnet synth: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (c.classification) {
        printf("wrote %s: %d classification images (%d train, %d val; %d without objects skipped) of %dx%d, "
               "%d classes, seed %" PRIu64 ", in %.2f s\n",
               c.out_dir, st.n_train + st.n_val, st.n_train, st.n_val, c.n_images - st.n_train - st.n_val, c.height,
               c.width, c.n_classes, c.seed, secs);
        return MN_EXIT_OK;
    }
    printf("wrote %s: %d images (%d train, %d val, %d without objects) of %dx%d, %d objects "
           "(%d small, %d medium, %d large), seed %" PRIu64 ", in %.2f s\n",
           c.out_dir, c.n_images, st.n_train, st.n_val, st.n_empty, c.height, c.width, st.n_objects, st.n_small,
           st.n_medium, st.n_large, c.seed, secs);
    return MN_EXIT_OK;
}
