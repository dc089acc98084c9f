/* mutualnet export: one configuration of a checkpoint, as a compact checkpoint or as ONNX. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "mn/export.h"
#include "mn/image.h"
#include "select.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mutualnet export --checkpoint FILE --out OUT.onnx|OUT.safetensors\n"
            "                        [--budget MACS | --budget-ms MS | --width W --size S|HxW] [--golden IMAGE]\n"
            "                        [--overwrite]\n\n"
            "Writes the configuration the options choose (as eval and predict choose it: by the query table for a\n"
            "budget, else the width and size given, else the widest width at the evaluation size) alone:\n"
            "  OUT.safetensors  a compact checkpoint: the channels that width reads, its BN statistics, classes and\n"
            "                   configuration; eval, predict, calibrate and info take it like any checkpoint\n"
            "  OUT.onnx         ONNX opset 13 with BN folded into the convolutions; class names, input size, mean\n"
            "                   and std in the metadata. A detector gives two files: OUT.onnx (backbone, FPN, RPN\n"
            "                   maps) and OUT.box_head.onnx; the steps between them are in its \"postprocess\" metadata\n"
            "  --golden IMAGE   (ONNX) also writes OUT.golden/: the input this library prepared from IMAGE and the\n"
            "                   outputs it computed, float32 files listed in manifest.json, to check a runtime with\n"
            "  --overwrite      replace an existing OUT\n");
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* The configuration chosen on the open model: (width, h, w), h the short side for a detector. */
static int choose(const mn_choice *ch, mn_model *m, float *width, int *h, int *w, int64_t *macs)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_choice_apply("export", ch, &m->seg, width, h, w, macs);
    case MN_TASK_CLASSIFICATION: return mn_choice_apply_cls("export", ch, &m->cls, width, h, w, macs);
    case MN_TASK_DETECTION: *w = 0; return mn_choice_apply_det("export", ch, &m->det, width, h, macs);
    }
    return -1;
}

int mn_cmd_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *golden_image = NULL;
    bool overwrite = false;
    mn_choice ch = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took = mn_choice_arg("export", &ch, argc, argv, &i);
        if (took < 0) return MN_EXIT_USAGE;
        if (took) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("export", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--out")) {
            if (!(out = mn_arg_value("export", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--golden")) {
            if (!(golden_image = mn_arg_value("export", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--overwrite")) {
            overwrite = true;
        } else {
            fprintf(stderr, "mutualnet export: unknown %s %s (see mutualnet export --help)\n",
                    a[0] == '-' ? "option" : "argument", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!ckpt || !out) {
        fprintf(stderr, "mutualnet export: --checkpoint FILE and --out FILE are required\n");
        return MN_EXIT_USAGE;
    }
    bool onnx = ends_with(out, ".onnx");
    if (!onnx && !ends_with(out, ".safetensors")) {
        fprintf(stderr, "mutualnet export: --out %s: the name must end in .onnx or .safetensors (the format)\n", out);
        return MN_EXIT_USAGE;
    }
    if (golden_image && !onnx) {
        fprintf(stderr, "mutualnet export: --golden is for ONNX files (a compact checkpoint is checked by eval)\n");
        return MN_EXIT_USAGE;
    }
    if (onnx && !mn_export_has_onnx()) {
        fprintf(stderr, "mutualnet export: this build has no ONNX support (install protobuf-c-compiler, "
                        "libprotobuf-c-dev and libonnx-dev, then reconfigure)\n");
        return MN_EXIT_FAIL;
    }
    if (!overwrite && file_size(out) >= 0) {
        fprintf(stderr, "mutualnet export: %s exists; give --overwrite to replace it\n", out);
        return MN_EXIT_FAIL;
    }
    mn_model m;
    if (mn_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet export: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int h, w;
    int64_t macs;
    int pick = choose(&ch, &m, &width, &h, &w, &macs);
    if (pick) {
        mn_model_free(&m);
        return pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
    }
    int rc;
    char *second = NULL, golden_dir[4096];
    mn_image img = {0};
    if (onnx) {
        mn_export_golden g = {golden_dir, &img};
        snprintf(golden_dir, sizeof golden_dir, "%.*s.golden", (int)(strlen(out) - 5), out);
        rc = golden_image ? mn_image_load(golden_image, 3, &img) : 0;
        if (!rc) rc = mn_export_onnx(&m, width, h, w, out, ckpt, golden_image ? &g : NULL, &second);
    } else {
        rc = mn_export_compact(&m, width, h, w, out, ckpt);
    }
    mn_image_free(&img);
    mn_model_free(&m);
    if (rc) {
        fprintf(stderr, "mutualnet export: %s\n", mn_last_error());
        free(second);
        return MN_EXIT_FAIL;
    }
    long long in_size = file_size(ckpt), out_size = file_size(out);
    printf("wrote %s: %.2f MB (the checkpoint %s: %.2f MB)\n", out, (double)out_size / 1e6, ckpt, (double)in_size / 1e6);
    if (second) printf("wrote %s: %.2f MB (the box head)\n", second, (double)file_size(second) / 1e6);
    if (golden_image) printf("wrote %s/manifest.json: the input prepared from %s and this library's outputs\n", golden_dir,
                             golden_image);
    free(second);
    return MN_EXIT_OK;
}
