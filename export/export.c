/* One configuration out of a slimmable model: trace its pass (export/graph.c), then write the
 * channels it read as a compact checkpoint or the whole pass as ONNX (export/onnx.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "export/internal.h"
#include "mn/dataset.h"
#include "mn/export.h"
#include "mn/fileio.h"

/* One traced network: its graph, the tape it ran on, its input and output values. */
typedef struct pass {
    ex_graph g;
    mn_tape t;
    int in;
    int out[3 * MN_DET_LEVELS];
    int n_out;
    bool dynamic_batch;
    const char *graph_name;
} pass;

static void pass_free(pass *p)
{
    ex_graph_free(&p->g);
    mn_tape_free(&p->t);
}

/* The input variable (n, c, h, w) filled from data (zeros when NULL), declared as the graph's. */
static mn_var *pass_input(pass *p, const char *name, int n, int c, int h, int w, const float *data)
{
    int64_t shape[4] = {n, c, h, w};
    mn_var *x = mn_var_new(&p->t, 4, shape);
    if (!x) return NULL;
    size_t bytes = sizeof(float) * (size_t)(n * c) * (size_t)h * (size_t)w;
    if (data) memcpy(x->val.data, data, bytes);
    else memset(x->val.data, 0, bytes);
    return (p->in = ex_graph_input(&p->g, x, name)) < 0 ? NULL : x;
}

static int pass_output(pass *p, mn_var *y, const char *name)
{
    int k = ex_graph_value(&p->g, y, name);
    if (k < 0) return mn_last_error_code();
    snprintf(p->g.v[k].name, sizeof p->g.v[k].name, "%s", name);
    p->out[p->n_out++] = k;
    return 0;
}

static mn_param_set *params_of(mn_model *m) { return mn_model_params(m); }

/* Which network of the model a pass runs. */
enum net { NET_SEG, NET_CLS, NET_DET_MAPS, NET_DET_BOX };

/* Runs network `which` of m at width on input (n, 3, h, w) (or for the box head (n, C, S, S)),
 * traced into p. */
static int run_pass(pass *p, mn_model *m, enum net which, float width, int n, int h, int w, const float *input)
{
    memset(p, 0, sizeof *p);
    mn_tape_init(&p->t, 0);
    int rc = ex_graph_init(&p->g, params_of(m));
    if (rc) return rc;
    mn_tape_set_grad(&p->t, false);
    mn_run r = {.tape = &p->t, .width = width, .training = false};
    mn_var *x;
    if (which == NET_DET_BOX) {
        int c = mn_det_neck_channels(m->det.net, width), s = mn_det_cfg(m->det.net)->roi_size;
        x = pass_input(p, "pooled", n, c, s, s, input);
        p->dynamic_batch = true;
    } else {
        x = pass_input(p, "input", n, 3, h, w, input);
    }
    if (!x) return mn_last_error_code();
    p->t.tracer = &p->g.tracer;
    switch (which) {
    case NET_SEG: {
        p->graph_name = "segmenter";
        mn_var *y = mn_seg_forward_raw(m->seg.net, &r, x);
        rc = y ? pass_output(p, y, "logits") : mn_last_error_code();
        break;
    }
    case NET_CLS: {
        p->graph_name = "classifier";
        mn_var *y = NULL;
        rc = mn_backbone_forward(m->cls.net, &r, x, NULL, &y);
        if (!rc) rc = pass_output(p, y, "logits");
        break;
    }
    case NET_DET_MAPS: {
        p->graph_name = "detector_maps";
        mn_var *maps[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
        rc = mn_det_forward_maps(m->det.net, &r, x, maps, obj, delta);
        char name[32];
        for (int l = 0; l < MN_DET_LEVELS && !rc; l++) {
            snprintf(name, sizeof name, "p%d", l + 2);
            rc = pass_output(p, maps[l], name);
        }
        for (int l = 0; l < MN_DET_LEVELS && !rc; l++) {
            snprintf(name, sizeof name, "objectness%d", l + 2);
            rc = pass_output(p, obj[l], name);
        }
        for (int l = 0; l < MN_DET_LEVELS && !rc; l++) {
            snprintf(name, sizeof name, "deltas%d", l + 2);
            rc = pass_output(p, delta[l], name);
        }
        break;
    }
    case NET_DET_BOX: {
        p->graph_name = "detector_box_head";
        mn_var *cls = NULL, *box = NULL;
        rc = mn_det_forward_box_head(m->det.net, &r, x, &cls, &box);
        if (!rc) rc = pass_output(p, cls, "class_logits");
        if (!rc) rc = pass_output(p, box, "box_deltas");
        break;
    }
    }
    p->t.tracer = NULL;
    return rc;
}

/* The network input for (h, w): the detector's is its padded size for short side h. */
static int input_size(mn_model *m, int h, int w, int *ih, int *iw)
{
    if (m->task != MN_TASK_DETECTION) {
        *ih = h, *iw = w;
        return 0;
    }
    return mn_det_model_input_size(&m->det, h, ih, iw);
}

/* The passes a model's export consists of: 1, or 2 for a detector. */
static int run_all(mn_model *m, float width, int h, int w, const float *input, const float *pooled, int n_pooled,
                   pass *ps, int *n)
{
    int ih, iw, rc = mn_model_select(m, width, h, w);
    if (!rc) rc = input_size(m, h, w, &ih, &iw);
    *n = 0;
    if (rc) return rc;
    switch (m->task) {
    case MN_TASK_SEGMENTATION: *n = 1; return run_pass(&ps[0], m, NET_SEG, width, 1, ih, iw, input);
    case MN_TASK_CLASSIFICATION: *n = 1; return run_pass(&ps[0], m, NET_CLS, width, 1, ih, iw, input);
    case MN_TASK_DETECTION:
        *n = 1;
        rc = run_pass(&ps[0], m, NET_DET_MAPS, width, 1, ih, iw, input);
        if (rc) return rc;
        *n = 2;
        return run_pass(&ps[1], m, NET_DET_BOX, width, n_pooled, 0, 0, pooled);
    }
    return mn_error(MN_EINVAL, "export: a model of no known task");
}

int mn_export_keep(mn_model *m, float width, int h, int w, int64_t (**keep)[MN_MAX_DIMS])
{
    pass ps[2];
    int n = 0, rc = run_all(m, width, h, w, NULL, NULL, 1, ps, &n);
    const mn_param_set *params = params_of(m);
    *keep = rc ? NULL : calloc((size_t)params->n + 1, sizeof **keep);
    if (!rc && !*keep) rc = mn_error(MN_ENOMEM, "export: out of memory");
    for (int k = 0; !rc && k < n; k++)
        for (int i = 0; i < params->n; i++)
            for (int d = 0; d < MN_MAX_DIMS; d++)
                if ((*keep)[i][d] < ps[k].g.keep[i][d]) (*keep)[i][d] = ps[k].g.keep[i][d];
    for (int k = 0; k < n; k++) pass_free(&ps[k]);
    if (rc) {
        free(*keep);
        *keep = NULL;
    }
    return rc;
}

int mn_export_compact(mn_model *m, float width, int h, int w, const char *path, const char *source)
{
    int64_t(*keep)[MN_MAX_DIMS];
    int rc = mn_export_keep(m, width, h, w, &keep);
    if (rc) return rc;
    const mn_param_set *params = params_of(m);
    /* a parameter the pass never read (none in today's models) is kept whole rather than dropped */
    for (int i = 0; i < params->n; i++)
        if (!keep[i][0]) memset(keep[i], 0, sizeof keep[i]);
    rc = mn_model_save_fixed(m, path, width, h, w, (const int64_t(*)[MN_MAX_DIMS])keep, source);
    free(keep);
    return rc;
}

/* ---- ONNX ---- */

/* The image as the model sees it at input ih x iw: predict's preparation. */
static int golden_input(mn_model *m, const mn_image *img, int h, int ih, int iw, float *out /* (3, ih, iw) */)
{
    mn_sample s = {.image = *img};
    const mn_config *c = mn_model_config(m);
    switch (m->task) {
    case MN_TASK_SEGMENTATION: {
        mn_seg_aug a;
        mn_seg_aug_default(&a, ih, iw, false);
        return mn_seg_transform(&a, &s, NULL, out, NULL);
    }
    case MN_TASK_CLASSIFICATION: {
        mn_cls_aug a = mn_config_cls_aug(c, false);
        a.out_h = ih, a.out_w = iw;
        return mn_cls_transform(&a, &s, NULL, out);
    }
    case MN_TASK_DETECTION: {
        mn_det_aug a;
        mn_det_aug_default(&a, h, c->det.max_side, false);
        int n = 0;
        mn_det_image info;
        return mn_det_transform(&a, &s, NULL, out, ih, iw, NULL, &n, &info);
    }
    }
    return mn_error(MN_EINVAL, "export: a model of no known task");
}

static cJSON *golden_tensor(const char *dir, const ex_value *v, const float *data, bool dynamic, int *rc)
{
    char file[96], path[4096];
    snprintf(file, sizeof file, "%s.bin", v->name);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    if (!*rc) *rc = mn_write_file_atomic(path, data, sizeof(float) * (size_t)n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < v->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)v->shape[d]));
    cJSON_AddStringToObject(o, "file", file);
    (void)dynamic;
    return o;
}

/* The pass's inputs and outputs as the library computed them, listed for a runtime's check. */
static cJSON *golden_graph(const char *dir, const char *model_file, pass *p, int *rc)
{
    cJSON *g = cJSON_CreateObject();
    const char *base = strrchr(model_file, '/');
    cJSON_AddStringToObject(g, "model", base ? base + 1 : model_file);
    cJSON *ins = cJSON_AddArrayToObject(g, "inputs"), *outs = cJSON_AddArrayToObject(g, "outputs");
    const ex_value *in = &p->g.v[p->in];
    cJSON_AddItemToArray(ins, golden_tensor(dir, in, in->var->val.data, p->dynamic_batch, rc));
    for (int i = 0; i < p->n_out; i++) {
        const ex_value *o = &p->g.v[p->out[i]];
        cJSON_AddItemToArray(outs, golden_tensor(dir, o, o->var->val.data, p->dynamic_batch, rc));
    }
    return g;
}

static char *json_floats(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static const char *const task_names[] = {"segmentation", "detection", "classification"};

static const char *preprocess_text(enum mn_task_kind t)
{
    switch (t) {
    case MN_TASK_SEGMENTATION:
        return "RGB / 255, resized (bilinear, half-pixel, no antialias) to input_size, then (x - mean) / std; resize the "
               "logits to the image's size (bilinear, half-pixel) and take the argmax over classes";
    case MN_TASK_CLASSIFICATION:
        return "RGB / 255, resized so that the centre crop of input_size covers eval_crop of the shorter side "
               "(bilinear, half-pixel), centre-cropped, then (x - mean) / std; softmax over the logits";
    case MN_TASK_DETECTION:
        return "RGB / 255, resized (bilinear) so that the short side is short_side and the long side at most "
               "max_side, (x - mean) / std, placed top-left in a zero tensor of input_size";
    }
    return "";
}

static const char *postprocess_det =
    "per level: sigmoid(objectness) over anchors (sizes, ratios of the config), the top rpn_pre_nms_test per level, "
    "deltas decoded (torchvision BoxCoder weights 1,1,1,1, dw/dh clamped at log(1000/16)), clipped to the valid image, "
    "boxes under 1e-3 px dropped, NMS at rpn_nms per level, the best rpn_post_nms_test kept per image; each proposal "
    "pooled by RoIAlign (roi_size, sampling ratio, aligned=false) from P2..P5 by the FPN level rule "
    "floor(4 + log2(sqrt(area) / 224)) clamped to 2..5; the box head's softmax over class_logits, box_deltas decoded "
    "with weights 10,10,5,5, clipped; per class: score > box_score_thresh, boxes under 1e-2 px dropped, NMS at "
    "the box NMS threshold; the best detections per image kept; boxes scaled back by the resize factor (see config)";

int mn_export_onnx(mn_model *m, float width, int h, int w, const char *path, const char *source,
                   const mn_export_golden *golden, char **second)
{
    if (second) *second = NULL;
    if (!mn_export_has_onnx())
        return mn_error(MN_EINVAL, "%s: this build has no ONNX support (install protobuf-c-compiler, "
                                   "libprotobuf-c-dev and libonnx-dev, then reconfigure)", path);
    int ih, iw, rc = input_size(m, h, w, &ih, &iw);
    if (rc) return rc;
    float *input = NULL, *pooled = NULL;
    int n_pooled = 1;
    if (golden) {
        input = malloc(sizeof(float) * 3 * (size_t)ih * (size_t)iw);
        if (!input) return mn_error(MN_ENOMEM, "export: out of memory");
        rc = golden_input(m, golden->image, h, ih, iw, input);
        if (!rc && m->task == MN_TASK_DETECTION) {
            /* the box head is a plain network: any pooled features test it; 8 rows of N(0, 1) */
            int c = mn_det_neck_channels(m->det.net, width), s = mn_det_cfg(m->det.net)->roi_size;
            n_pooled = 8;
            size_t n = (size_t)n_pooled * (size_t)c * (size_t)(s * s);
            mn_rng rng;
            mn_rng_seed(&rng, 1);
            if (!(pooled = malloc(sizeof(float) * n))) rc = mn_error(MN_ENOMEM, "export: out of memory");
            for (size_t i = 0; !rc && i < n; i++) pooled[i] = mn_rng_normal(&rng);
        }
    }
    pass ps[2];
    int n = 0;
    if (!rc) rc = run_all(m, width, h, w, input, pooled, n_pooled, ps, &n);
    free(input);
    free(pooled);

    const mn_config *c = mn_model_config(m);
    int64_t macs = 0;
    if (!rc) rc = mn_model_flops(m, width, h, w, &macs);
    cJSON *classes = cJSON_CreateArray();
    for (int k = 0; k < mn_model_num_classes(m); k++)
        cJSON_AddItemToArray(classes, cJSON_CreateString(mn_model_class_name(m, k)));
    mn_seg_aug norm; /* the three tasks normalise alike */
    mn_seg_aug_default(&norm, 32, 32, false);
    char *classes_s = cJSON_PrintUnformatted(classes), *config_s = mn_config_to_json(c),
         *mean_s = json_floats(norm.mean, 3), *std_s = json_floats(norm.std, 3);
    cJSON_Delete(classes);
    char width_s[32], size_s[48], macs_s[32], side_s[96];
    snprintf(width_s, sizeof width_s, "%g", (double)width);
    snprintf(size_s, sizeof size_s, "[%d, %d]", ih, iw);
    snprintf(macs_s, sizeof macs_s, "%lld", (long long)macs);
    snprintf(side_s, sizeof side_s, "short_side %d, max_side %d", h, c->det.max_side);
    const char *keys[12], *vals[12];
    int nm = 0;
    keys[nm] = "task", vals[nm++] = task_names[m->task];
    keys[nm] = "classes", vals[nm++] = classes_s;
    keys[nm] = "width", vals[nm++] = width_s;
    keys[nm] = "input_size", vals[nm++] = size_s;
    keys[nm] = "mean", vals[nm++] = mean_s;
    keys[nm] = "std", vals[nm++] = std_s;
    keys[nm] = "preprocess", vals[nm++] = preprocess_text(m->task);
    keys[nm] = "macs", vals[nm++] = macs_s;
    keys[nm] = "source", vals[nm++] = source ? source : "";
    keys[nm] = "config", vals[nm++] = config_s;
    if (m->task == MN_TASK_DETECTION) {
        keys[nm] = "resize", vals[nm++] = side_s;
        keys[nm] = "postprocess", vals[nm++] = postprocess_det;
    }
    if (!rc && (!classes_s || !config_s || !mean_s || !std_s)) rc = mn_error(MN_ENOMEM, "export: out of memory");

    char *box_path = NULL;
    if (!rc && n == 2) {
        size_t len = strlen(path);
        const char *ext = len > 5 && !strcmp(path + len - 5, ".onnx") ? path + len - 5 : path + len;
        if (!(box_path = malloc(len + 32))) rc = mn_error(MN_ENOMEM, "export: out of memory");
        else snprintf(box_path, len + 32, "%.*s.box_head.onnx", (int)(ext - path), path);
    }
    for (int k = 0; !rc && k < n; k++)
        rc = ex_onnx_write(k ? box_path : path, &ps[k].g, &ps[k].in, 1, ps[k].out, ps[k].n_out, ps[k].dynamic_batch,
                           ps[k].graph_name, keys, vals, nm);
    if (!rc && golden) {
        rc = mn_mkdirs(golden->dir);
        cJSON *man = cJSON_CreateObject(), *graphs = cJSON_AddArrayToObject(man, "graphs");
        for (int k = 0; k < n; k++) cJSON_AddItemToArray(graphs, golden_graph(golden->dir, k ? box_path : path, &ps[k], &rc));
        char *s = cJSON_Print(man), mpath[4096];
        cJSON_Delete(man);
        snprintf(mpath, sizeof mpath, "%s/manifest.json", golden->dir);
        if (!rc) rc = s ? mn_write_file_atomic(mpath, s, strlen(s)) : mn_error(MN_ENOMEM, "export: out of memory");
        free(s);
    }
    for (int k = 0; k < n; k++) pass_free(&ps[k]);
    free(classes_s);
    free(config_s);
    free(mean_s);
    free(std_s);
    if (!rc && second) *second = box_path;
    else free(box_path);
    return rc;
}
