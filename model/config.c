/* Table-driven strict JSON configuration: every key is a row (path, type, place, range, help),
 * so parsing, defaults, serialising and the README reference come from one list. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/backbone.h"
#include "mn/config.h"
#include "mn/fileio.h"
#include "mn/image.h"
#include "mn/json.h"

enum kind { K_STR, K_INT, K_FLOAT, K_BOOL, K_ENUM, K_INT2, K_FLOAT2, K_FLOATS, K_U64 };

typedef struct key {
    const char *path;          /* "section.name" */
    enum kind kind;
    size_t off, size;          /* place in mn_config; size of a string buffer */
    double lo, hi;             /* numeric range */
    const char *choices;       /* K_ENUM: "a|b|c", index = value */
    const char *help;
} key;

#define F(field) offsetof(mn_config, field), sizeof(((mn_config *)0)->field)
static const key keys[] = {
    {"task", K_ENUM, F(task), 0, 0, "segmentation|detection|classification", "what the model predicts"},
    {"model.backbone", K_STR, F(model.backbone), 0, 0, NULL, "mobilenet_v2 | mobilenet_v1 | resnet50"},
    {"model.output_stride", K_INT, F(model.output_stride), 8, 16, NULL, "backbone output stride (16 or 8, by dilation)"},
    {"model.decoder", K_STR, F(model.decoder), 0, 0, NULL, "v3plus (DeepLabV3+ decoder) | v3 (ASPP only)"},
    {"model.slim_head", K_BOOL, F(model.slim_head), 0, 0, NULL, "head channels follow the width (false: full-width head)"},
    {"model.sync_bn", K_BOOL, F(model.sync_bn), 0, 0, NULL,
     "with several MPI ranks, BN statistics over the global batch (false: each rank's own)"},
    {"model.aspp_channels", K_INT, F(model.aspp_channels), 8, 2048, NULL, "ASPP and decoder channels at width 1"},
    {"model.low_level_channels", K_INT, F(model.low_level_channels), 8, 1024, NULL, "V3+ stride-4 projection channels"},
    {"model.init", K_STR, F(model.init), 0, 0, NULL,
     "safetensors weights to start from: every tensor whose name and shape match (e.g. imported ImageNet weights); \"\" = random"},
    {"model.frozen_stages", K_INT, F(model.frozen_stages), 0, MN_BACKBONE_STAGES, NULL,
     "fine-tuning: backbone stages kept as loaded: 0 none, 1 the stem, k the stem and the first k-1 stages, 5 all "
     "(torchvision's trainable_backbone_layers = 5 - k); no gradient, no update, BN in eval mode"},
    {"model.norm_eval", K_BOOL, F(model.norm_eval), 0, 0, NULL,
     "fine-tuning: backbone BN normalises with its running statistics and does not update them in training "
     "(MMDetection's norm_eval); calibration still re-estimates them per configuration"},
    {"data.kind", K_STR, F(data.kind), 0, 0, NULL, "folder | voc | cityscapes | coco | imagefolder (classification: {split}/<class>/<image>)"},
    {"data.root", K_STR, F(data.root), 0, 0, NULL, "data set root folder"},
    {"data.train_split", K_STR, F(data.train_split), 0, 0, NULL, "split used for training and BN calibration"},
    {"data.val_split", K_STR, F(data.val_split), 0, 0, NULL, "split used for evaluation and the query table"},
    {"data.images", K_STR, F(data.images), 0, 0, NULL, "folder/coco/imagefolder kinds: image folder under root ({split} is replaced; imagefolder: \"{split}\")"},
    {"data.labels", K_STR, F(data.labels), 0, 0, NULL, "folder kind: label PNG folder under root ({split} is replaced)"},
    {"data.classes", K_STR, F(data.classes), 0, 0, NULL, "folder/imagefolder kinds: class list, one \"index name\" or \"name\" per line"},
    {"data.annotations", K_STR, F(data.annotations), 0, 0, NULL, "coco kind: instances JSON under root ({split} is replaced)"},
    {"data.void_index", K_INT, F(data.void_index), -1, 254, NULL, "folder kind: label value treated as ignore (-1 none)"},
    {"data.crop", K_INT2, F(data.crop), 32, 4096, NULL, "training crop [h, w] (multiples of 32 are fastest)"},
    {"data.eval_size", K_INT2, F(data.eval_size), 32, 4096, NULL, "evaluation input [h, w] at scale 1"},
    {"data.scale_range", K_FLOAT2, F(data.scale_range), 0.1, 8, NULL, "segmentation: random rescale [min, max] before cropping"},
    {"data.hflip", K_BOOL, F(data.hflip), 0, 0, NULL, "random horizontal flips"},
    {"data.crop_area", K_FLOAT2, F(data.crop_area), 0.01, 1, NULL,
     "classification: training crop box area [min, max] as a fraction of the image's (RandomResizedCrop's scale)"},
    {"data.crop_ratio", K_FLOAT2, F(data.crop_ratio), 0.1, 10, NULL,
     "classification: training crop box width / height [min, max] (RandomResizedCrop's ratio)"},
    {"data.eval_crop", K_FLOAT, F(data.eval_crop), 0.1, 1, NULL,
     "classification: evaluation centre crop as a fraction of the resized image (0.875: Resize(256), CenterCrop(224))"},
    {"data.workers", K_INT, F(data.workers), 0, 64, NULL, "background loading threads"},
    {"data.max_pixels", K_INT, F(data.max_pixels), 1, 2147483647, NULL,
     "largest width x height of an image or label file, checked from its header before decoding"},
    {"mutual.mode", K_ENUM, F(mutual.mode), 0, 0, "mutualnet|usnet|independent",
     "mutualnet: widths x scales; usnet: widths at full scale; independent: one configuration"},
    {"mutual.width_min", K_FLOAT, F(mutual.width_min), 0.05, 1, NULL, "narrowest width trained"},
    {"mutual.width_max", K_FLOAT, F(mutual.width_max), 0.05, 1, NULL, "widest width (the teacher)"},
    {"mutual.num_subnets", K_INT, F(mutual.num_subnets), 1, 16, NULL, "networks per iteration, the full one included"},
    {"mutual.scales", K_FLOATS, F(mutual.scales), 0.1, 1, NULL, "input scales sub-networks draw from; the first (1) is the full net's"},
    {"mutual.distill", K_ENUM, F(mutual.distill), 0, 0, "none|kl", "sub-network distillation from the full network"},
    {"mutual.gt_weight", K_FLOAT, F(mutual.gt_weight), 0, 100, NULL, "weight of sub-networks' ground-truth loss"},
    {"mutual.distill_weight", K_FLOAT, F(mutual.distill_weight), 0, 100, NULL, "weight of sub-networks' distillation loss"},
    {"mutual.width", K_FLOAT, F(mutual.width), 0.05, 1, NULL, "independent mode: the width trained"},
    {"optim.lr", K_FLOAT, F(optim.lr), 0, 10, NULL, "base learning rate"},
    {"optim.momentum", K_FLOAT, F(optim.momentum), 0, 1, NULL, "SGD momentum"},
    {"optim.nesterov", K_BOOL, F(optim.nesterov), 0, 0, NULL, "Nesterov momentum"},
    {"optim.weight_decay", K_FLOAT, F(optim.weight_decay), 0, 1, NULL, "L2 on conv and linear kernels (not BN, biases, depthwise)"},
    {"optim.schedule", K_ENUM, F(optim.schedule), 0, 0, "cosine|poly", "per-iteration learning-rate schedule"},
    {"optim.power", K_FLOAT, F(optim.power), 0, 10, NULL, "poly schedule exponent"},
    {"optim.warmup_iters", K_INT, F(optim.warmup_iters), 0, 1000000, NULL, "linear warm-up length"},
    {"optim.warmup_factor", K_FLOAT, F(optim.warmup_factor), 0, 1, NULL, "warm-up starts at lr * this"},
    {"optim.clip_grad_norm", K_FLOAT, F(optim.clip_grad_norm), 0, 1e6, NULL,
     "cap on the joint L2 norm of all gradients of an iteration (0: off)"},
    {"optim.backbone_lr_mult", K_FLOAT, F(optim.backbone_lr_mult), 0, 100, NULL,
     "the backbone's learning rate is lr x this (not a classifier's; 0: the backbone is not updated)"},
    {"train.batch_size", K_INT, F(train.batch_size), 1, MN_MAX_BATCH, NULL, "images per iteration"},
    {"train.iterations", K_INT, F(train.iterations), 1, 100000000, NULL, "optimiser steps"},
    {"train.seed", K_U64, F(train.seed), 0, 0, NULL, "seed of every random choice (data order, augmentation, widths, init)"},
    {"train.checkpoint_every", K_INT, F(train.checkpoint_every), 1, 100000000, NULL, "iterations between checkpoints"},
    {"train.check_every", K_INT, F(train.check_every), 1, 100000000, NULL,
     "with several MPI ranks: iterations between checks that every rank holds the same parameters"},
    {"train.log_every", K_INT, F(train.log_every), 1, 100000000, NULL, "iterations between metrics lines"},
    {"train.eval_every", K_INT, F(train.eval_every), 0, 100000000, NULL, "iterations between validation runs (0: at the end only)"},
    {"train.out_dir", K_STR, F(train.out_dir), 0, 0, NULL, "run folder: checkpoints, metrics.jsonl, plots"},
    {"calibrate.batches", K_INT, F(calibrate.batches), 1, 100000, NULL, "BN calibration batches per configuration"},
    {"calibrate.width_step", K_FLOAT, F(calibrate.width_step), 0.01, 1, NULL, "width grid step of the query table"},
    {"det.short_side", K_INT, F(det.short_side), 32, 4096, NULL,
     "detection: the full network's input short side; sub-networks use it x mutual.scales"},
    {"det.max_side", K_INT, F(det.max_side), 32, 8192, NULL, "detection: cap on the resized long side"},
    {"det.anchor_size", K_INT, F(det.anchor_size), 4, 1024, NULL, "detection: anchor side on P2, doubling per level to P6"},
    {"det.fpn_channels", K_INT, F(det.fpn_channels), 8, 2048, NULL, "detection: FPN and RPN channels at width 1"},
    {"det.box_hidden", K_INT, F(det.box_hidden), 8, 8192, NULL, "detection: box head hidden width at width 1"},
    {"det.rpn_pre_nms_train", K_INT, F(det.rpn_pre_nms_train), 1, 100000, NULL, "detection: proposals per level before NMS (training)"},
    {"det.rpn_post_nms_train", K_INT, F(det.rpn_post_nms_train), 1, 100000, NULL, "detection: proposals per image after NMS (training)"},
    {"det.rpn_pre_nms_test", K_INT, F(det.rpn_pre_nms_test), 1, 100000, NULL, "detection: proposals per level before NMS (inference)"},
    {"det.rpn_post_nms_test", K_INT, F(det.rpn_post_nms_test), 1, 100000, NULL,
     "detection: proposals per image after NMS (inference; also the RoIs MACs are counted on)"},
    {"det.rpn_batch", K_INT, F(det.rpn_batch), 1, 100000, NULL, "detection: anchors sampled per image for the RPN loss"},
    {"det.roi_batch", K_INT, F(det.roi_batch), 1, 100000, NULL, "detection: RoIs sampled per image for the box head loss"},
    {"det.score_thresh", K_FLOAT, F(det.score_thresh), 0, 1, NULL, "detection: minimum class probability of a detection"},
    {"det.detections_per_img", K_INT, F(det.detections_per_img), 1, 10000, NULL, "detection: detections kept per image"},
};
#undef F
enum { N_KEYS = sizeof keys / sizeof *keys };

void mn_config_default(mn_config *c)
{
    memset(c, 0, sizeof *c);
    c->task = MN_TASK_SEGMENTATION;
    strcpy(c->model.backbone, "mobilenet_v2");
    c->model.output_stride = 16;
    strcpy(c->model.decoder, "v3plus");
    c->model.slim_head = true;
    c->model.sync_bn = true;
    c->model.aspp_channels = 256;
    c->model.low_level_channels = 48;
    strcpy(c->data.kind, "folder");
    strcpy(c->data.root, "data/shapes");
    strcpy(c->data.train_split, "train");
    strcpy(c->data.val_split, "val");
    strcpy(c->data.images, "images/{split}");
    strcpy(c->data.labels, "labels/{split}");
    strcpy(c->data.classes, "classes.txt");
    strcpy(c->data.annotations, "annotations/instances_{split}.json");
    c->data.void_index = -1;
    c->data.crop[0] = c->data.crop[1] = 320;
    c->data.eval_size[0] = c->data.eval_size[1] = 320;
    c->data.scale_range[0] = 0.5f;
    c->data.scale_range[1] = 2.0f;
    c->data.hflip = true;
    c->data.crop_area[0] = 0.08f;
    c->data.crop_area[1] = 1.0f;
    c->data.crop_ratio[0] = 3.0f / 4.0f;
    c->data.crop_ratio[1] = 4.0f / 3.0f;
    c->data.eval_crop = 0.875f;
    c->data.workers = 2;
    c->data.max_pixels = (int)MN_IMAGE_DEFAULT_MAX_PIXELS;
    c->mutual.mode = MN_MODE_MUTUALNET;
    c->mutual.width_min = 0.35f;
    c->mutual.width_max = 1.0f;
    c->mutual.num_subnets = 4;
    c->mutual.n_scales = 4;
    c->mutual.scales[0] = 1.0f;
    c->mutual.scales[1] = 0.8f;
    c->mutual.scales[2] = 0.6f;
    c->mutual.scales[3] = 0.4f;
    c->mutual.distill = MN_DISTILL_KL;
    c->mutual.gt_weight = 1.0f;
    c->mutual.distill_weight = 1.0f;
    c->mutual.width = 1.0f;
    c->optim.lr = 0.01f;
    c->optim.momentum = 0.9f;
    c->optim.nesterov = true;
    c->optim.weight_decay = 4e-5f;
    c->optim.schedule = MN_SCHED_POLY;
    c->optim.power = 0.9f;
    c->optim.warmup_iters = 50;
    c->optim.warmup_factor = 0.1f;
    c->optim.backbone_lr_mult = 1.0f;
    c->train.batch_size = 8;
    c->train.iterations = 1000;
    c->train.seed = 1;
    c->train.checkpoint_every = 100;
    c->train.check_every = 100;
    c->train.log_every = 10;
    c->train.eval_every = 0;
    strcpy(c->train.out_dir, "runs/seg");
    c->calibrate.batches = 8;
    c->calibrate.width_step = 0.05f;
    c->det.short_side = 800; /* torchvision's Faster R-CNN defaults */
    c->det.max_side = 1333;
    c->det.anchor_size = 32;
    c->det.fpn_channels = 256;
    c->det.box_hidden = 1024;
    c->det.rpn_pre_nms_train = c->det.rpn_post_nms_train = 2000;
    c->det.rpn_pre_nms_test = c->det.rpn_post_nms_test = 1000;
    c->det.rpn_batch = 256;
    c->det.roi_batch = 512;
    c->det.score_thresh = 0.05f;
    c->det.detections_per_img = 100;
}

static const key *find_key(const char *path)
{
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].path, path)) return &keys[i];
    return NULL;
}

static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < N_KEYS; i++)
        if (!strncmp(keys[i].path, name, n) && keys[i].path[n] == '.') return true;
    return false;
}

static int number(const char *origin, const key *k, const cJSON *v, double *out)
{
    if (!cJSON_IsNumber(v)) return mn_error(MN_EINVAL, "%s: \"%s\" must be a number", origin, k->path);
    if (v->valuedouble < k->lo || v->valuedouble > k->hi)
        return mn_error(MN_EINVAL, "%s: \"%s\" = %g is outside [%g, %g]", origin, k->path, v->valuedouble, k->lo, k->hi);
    if ((k->kind == K_INT || k->kind == K_INT2) && v->valuedouble != (double)(long long)v->valuedouble)
        return mn_error(MN_EINVAL, "%s: \"%s\" must be a whole number", origin, k->path);
    *out = v->valuedouble;
    return 0;
}

/* JSON numbers are doubles: above 2^53 distinct integers read back as one, so a seed that large
 * is taken only as a decimal string ("18446744073709551615"), which keeps every bit. */
#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

static int parse_u64_text(const char *origin, const key *k, const char *s, unsigned long long *out)
{
    const char *p = s;
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9')
        return mn_error(MN_EINVAL, "%s: \"%s\" = \"%s\" is not a whole number from 0 to 18446744073709551615", origin,
                        k->path, s);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    while (*end == ' ') end++;
    if (errno == ERANGE || *end)
        return mn_error(MN_EINVAL, "%s: \"%s\" = \"%s\" is not a whole number from 0 to 18446744073709551615", origin,
                        k->path, s);
    *out = v;
    return 0;
}

static int set_u64(const char *origin, const key *k, const cJSON *v, unsigned long long *out)
{
    if (cJSON_IsString(v)) return parse_u64_text(origin, k, v->valuestring, out);
    if (!cJSON_IsNumber(v))
        return mn_error(MN_EINVAL, "%s: \"%s\" must be a whole number (or a decimal string)", origin, k->path);
    double d = v->valuedouble;
    if (d < 0 || d != floor(d))
        return mn_error(MN_EINVAL, "%s: \"%s\" = %g must be a whole number, 0 or more", origin, k->path, d);
    if (d >= EXACT_LIMIT)
        return mn_error(MN_EINVAL,
                        "%s: \"%s\" = %.17g is 2^53 or more, where JSON numbers lose digits; write it as a string, "
                        "e.g. \"%s\": \"18446744073709551557\"",
                        origin, k->path, d, k->path);
    *out = (unsigned long long)d;
    return 0;
}

static int set_value(const char *origin, const key *k, const cJSON *v, mn_config *c)
{
    char *at = (char *)c + k->off;
    double d;
    int rc;
    switch (k->kind) {
    case K_STR:
        if (!cJSON_IsString(v)) return mn_error(MN_EINVAL, "%s: \"%s\" must be a string", origin, k->path);
        if (strlen(v->valuestring) >= k->size)
            return mn_error(MN_EINVAL, "%s: \"%s\" is longer than %zu characters", origin, k->path, k->size - 1);
        strcpy(at, v->valuestring);
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(v)) return mn_error(MN_EINVAL, "%s: \"%s\" must be true or false", origin, k->path);
        *(bool *)at = cJSON_IsTrue(v);
        return 0;
    case K_INT:
        if ((rc = number(origin, k, v, &d))) return rc;
        *(int *)at = (int)d;
        return 0;
    case K_U64:
        return set_u64(origin, k, v, (unsigned long long *)at);
    case K_FLOAT:
        if ((rc = number(origin, k, v, &d))) return rc;
        *(float *)at = (float)d;
        return 0;
    case K_ENUM: {
        if (!cJSON_IsString(v)) return mn_error(MN_EINVAL, "%s: \"%s\" must be one of %s", origin, k->path, k->choices);
        const char *p = k->choices;
        for (int i = 0; *p; i++) {
            size_t n = strcspn(p, "|");
            if (strlen(v->valuestring) == n && !strncmp(p, v->valuestring, n)) {
                *(int *)at = i;
                return 0;
            }
            p += n + (p[n] == '|');
        }
        return mn_error(MN_EINVAL, "%s: \"%s\" = \"%s\" is not one of %s", origin, k->path, v->valuestring, k->choices);
    }
    case K_INT2:
    case K_FLOAT2:
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
            return mn_error(MN_EINVAL, "%s: \"%s\" must be a list of two numbers", origin, k->path);
        for (int i = 0; i < 2; i++) {
            if ((rc = number(origin, k, cJSON_GetArrayItem(v, i), &d))) return rc;
            if (k->kind == K_INT2) ((int *)at)[i] = (int)d;
            else ((float *)at)[i] = (float)d;
        }
        return 0;
    case K_FLOATS: {
        int n = cJSON_GetArraySize(v);
        if (!cJSON_IsArray(v) || n < 1 || n > MN_MAX_SCALES)
            return mn_error(MN_EINVAL, "%s: \"%s\" must be a list of 1 to %d numbers", origin, k->path, MN_MAX_SCALES);
        for (int i = 0; i < n; i++) {
            if ((rc = number(origin, k, cJSON_GetArrayItem(v, i), &d))) return rc;
            ((float *)at)[i] = (float)d;
        }
        c->mutual.n_scales = n; /* the only list-valued key */
        return 0;
    }
    }
    return 0;
}

static int walk(const char *origin, const cJSON *obj, const char *prefix, mn_config *c)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        char path[128];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->string);
        const key *k = find_key(path);
        int rc;
        if (k) {
            if ((rc = set_value(origin, k, it, c))) return rc;
        } else if (is_section(path)) {
            if (!cJSON_IsObject(it)) return mn_error(MN_EINVAL, "%s: \"%s\" must be an object", origin, path);
            if ((rc = walk(origin, it, path, c))) return rc;
        } else {
            return mn_error(MN_EINVAL, "%s: unknown key \"%s\" (mutualnet train --help-config lists them)", origin, path);
        }
    }
    return 0;
}

/* The data kinds each task reads: another kind would train on nothing (a COCO set has no label
 * maps, so a segmenter would see every pixel ignored) and fail only at the end. */
static const char *task_kinds(enum mn_task_kind t)
{
    return t == MN_TASK_DETECTION ? "coco" : t == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder|voc|cityscapes";
}

static bool in_list(const char *word, const char *list)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t m = strcspn(p, "|");
        if (m == n && !strncmp(p, word, n)) return true;
        p += m + (p[m] == '|');
    }
    return false;
}

int mn_config_check(const mn_config *c, const char *origin)
{
    static const char *const task_names[] = {"segmentation", "detection", "classification"};
    if (!in_list(c->data.kind, "folder|voc|cityscapes|coco|imagefolder"))
        return mn_error(MN_EINVAL, "%s: data.kind \"%s\" is not one of folder, voc, cityscapes, coco, imagefolder", origin,
                        c->data.kind);
    if (!in_list(c->data.kind, task_kinds(c->task)))
        return mn_error(MN_EINVAL,
                        "%s: task \"%s\" cannot train on data.kind \"%s\" (it reads %s); set data.kind, or task to "
                        "the one this data set is for",
                        origin, task_names[c->task], c->data.kind, task_kinds(c->task));
    if (!c->data.root[0]) return mn_error(MN_EINVAL, "%s: data.root is empty (the data set's folder)", origin);
    if (c->mutual.width_min > c->mutual.width_max)
        return mn_error(MN_EINVAL, "%s: mutual.width_min %g exceeds mutual.width_max %g", origin,
                        (double)c->mutual.width_min, (double)c->mutual.width_max);
    if (c->data.scale_range[0] > c->data.scale_range[1])
        return mn_error(MN_EINVAL, "%s: data.scale_range must be [min, max]", origin);
    if (c->data.crop_area[0] > c->data.crop_area[1] || c->data.crop_ratio[0] > c->data.crop_ratio[1])
        return mn_error(MN_EINVAL, "%s: data.crop_area and data.crop_ratio must be [min, max]", origin);
    /* each task's augmentation keys: one set for another task would silently do nothing */
    mn_config d;
    mn_config_default(&d);
    bool cls = c->task == MN_TASK_CLASSIFICATION;
    if (cls && memcmp(c->data.scale_range, d.data.scale_range, sizeof d.data.scale_range))
        return mn_error(MN_EINVAL,
                        "%s: data.scale_range is the segmentation rescale; classification crops with data.crop_area "
                        "and data.crop_ratio (RandomResizedCrop) instead",
                        origin);
    if (!cls && (memcmp(c->data.crop_area, d.data.crop_area, sizeof d.data.crop_area) ||
                 memcmp(c->data.crop_ratio, d.data.crop_ratio, sizeof d.data.crop_ratio) || c->data.eval_crop != d.data.eval_crop))
        return mn_error(MN_EINVAL, "%s: data.crop_area, data.crop_ratio and data.eval_crop apply to classification only", origin);
    if (c->mutual.scales[0] != 1.0f)
        return mn_error(MN_EINVAL, "%s: mutual.scales must start with 1 (the full network's scale)", origin);
    if (c->model.output_stride != 8 && c->model.output_stride != 16)
        return mn_error(MN_EINVAL, "%s: model.output_stride must be 8 or 16", origin);
    /* frozen or eval-mode BN keeps what model.init gave: without it, random weights and mean 0 / var 1 */
    if (!c->model.init[0] && (c->model.frozen_stages > 0 || c->model.norm_eval))
        return mn_error(MN_EINVAL,
                        "%s: model.%s keeps the backbone's %s as model.init gives them, and model.init is empty (they "
                        "would stay at their random initialisation); set model.init to pretrained weights",
                        origin, c->model.frozen_stages > 0 ? "frozen_stages" : "norm_eval",
                        c->model.frozen_stages > 0 ? "early stages" : "BN statistics");
    if (strcmp(c->model.decoder, "v3plus") && strcmp(c->model.decoder, "v3"))
        return mn_error(MN_EINVAL, "%s: model.decoder must be \"v3plus\" or \"v3\", not \"%s\"", origin, c->model.decoder);
    /* the ASPP's image-pooling branch normalises one value per image and channel: with one image
     * its batch variance is 0 (PyTorch refuses the same with "Expected more than 1 value per channel") */
    if (c->task == MN_TASK_SEGMENTATION && c->train.batch_size < 2)
        return mn_error(MN_EINVAL,
                        "%s: train.batch_size 1 is too small for segmentation: the ASPP's image-pooling BatchNorm "
                        "needs at least 2 images per batch (use 2 or more)",
                        origin);
    /* the same for every task at the backbone's stride-32 layers: batch x map cells per channel */
    float smin = 1.0f;
    for (int i = 0; c->mutual.mode == MN_MODE_MUTUALNET && i < c->mutual.n_scales; i++)
        smin = c->mutual.scales[i] < smin ? c->mutual.scales[i] : smin;
    int h = c->task == MN_TASK_DETECTION ? c->det.short_side : c->data.crop[0];
    int w = c->task == MN_TASK_DETECTION ? c->det.short_side : c->data.crop[1];
    int hs = (int)(h * smin) < 32 ? 32 : (int)(h * smin), ws = (int)(w * smin) < 32 ? 32 : (int)(w * smin);
    int64_t cells = (int64_t)c->train.batch_size * ((hs + 31) / 32) * ((ws + 31) / 32);
    if (cells < 2)
        return mn_error(MN_EINVAL,
                        "%s: train.batch_size %d at the smallest input, %dx%d, leaves one value per channel at the "
                        "backbone's stride-32 layers, where training BatchNorm needs two or more; use a batch of 2 "
                        "or more, or a larger input",
                        origin, c->train.batch_size, hs, ws);
    return 0;
}

static int parse_unchecked(const char *json, const char *origin, mn_config *c)
{
    cJSON *root = NULL;
    int rc = mn_json_parse(json, strlen(json), origin, &root);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mn_error(MN_EFORMAT, "%s: a configuration is a JSON object ({...}), not another kind of value", origin);
    }
    rc = walk(origin, root, "", c);
    cJSON_Delete(root);
    return rc;
}

int mn_config_parse(const char *json, const char *origin, mn_config *c)
{
    int rc = parse_unchecked(json, origin, c);
    return rc ? rc : mn_config_check(c, origin);
}

int mn_config_set(mn_config *c, const char *path, const char *value)
{
    const key *k = find_key(path);
    if (!k) return mn_error(MN_EINVAL, "--set: unknown key \"%s\" (mutualnet train --help-config lists them)", path);
    if (k->kind == K_U64) { /* from the text itself: a JSON number would round it */
        char origin[160];
        snprintf(origin, sizeof origin, "--set %s", path);
        return parse_u64_text(origin, k, value, (unsigned long long *)((char *)c + k->off));
    }
    bool textual = k->kind == K_STR || k->kind == K_ENUM;
    cJSON *v = cJSON_Parse(value);
    if (!v || (textual && !cJSON_IsString(v))) { /* bare words are strings */
        cJSON_Delete(v);
        v = cJSON_CreateString(value);
    }
    int rc = set_value("--set", k, v, c);
    cJSON_Delete(v);
    return rc;
}

static int load_unchecked(const char *path, mn_config *c)
{
    char *text = NULL;
    int rc = mn_read_file(path, (size_t)1 << 24, "configuration", &text, NULL);
    if (!rc) rc = parse_unchecked(text, path, c);
    free(text);
    return rc;
}

int mn_config_load(const char *path, mn_config *c)
{
    int rc = load_unchecked(path, c);
    return rc ? rc : mn_config_check(c, path);
}

int mn_config_load_with(const char *path, const char *const *sets /* (n_sets) */, int n_sets, mn_config *c)
{
    int rc = load_unchecked(path, c);
    for (int i = 0; !rc && i < n_sets; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof key)
            return mn_error(MN_EINVAL, "--set expects KEY=VALUE, not \"%s\"", sets[i]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        rc = mn_config_set(c, key, eq + 1);
    }
    if (rc) return rc;
    char origin[600];
    snprintf(origin, sizeof origin, n_sets ? "%s with --set" : "%s", path);
    return mn_config_check(c, origin);
}

/* The shortest decimal that reads back as the same float: 0.35f prints "0.35", not 0.3499999940. */
static double short_decimal(float f)
{
    char buf[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static cJSON *float_array(const float *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(short_decimal(v[i])));
    return a;
}

static cJSON *value_json(const key *k, const mn_config *c)
{
    const char *at = (const char *)c + k->off;
    switch (k->kind) {
    case K_STR: return cJSON_CreateString(at);
    case K_BOOL: return cJSON_CreateBool(*(const bool *)at);
    case K_INT: return cJSON_CreateNumber(*(const int *)at);
    case K_U64: {
        unsigned long long u = *(const unsigned long long *)at;
        if ((double)u < EXACT_LIMIT) return cJSON_CreateNumber((double)u);
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", u);
        return cJSON_CreateString(buf);
    }
    case K_FLOAT: return cJSON_CreateNumber(short_decimal(*(const float *)at));
    case K_ENUM: {
        const char *p = k->choices;
        for (int i = 0; i < *(const int *)at; i++) p += strcspn(p, "|") + 1;
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)strcspn(p, "|"), p);
        return cJSON_CreateString(buf);
    }
    case K_INT2: {
        const int *v = (const int *)at;
        return cJSON_CreateIntArray(v, 2);
    }
    case K_FLOAT2: return float_array((const float *)at, 2);
    case K_FLOATS: return float_array((const float *)at, c->mutual.n_scales);
    }
    return NULL;
}

char *mn_config_to_json(const mn_config *c)
{
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; root && i < N_KEYS; i++) {
        const char *dot = strchr(keys[i].path, '.');
        cJSON *parent = root;
        const char *name = keys[i].path;
        if (dot) {
            char sec[32];
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - keys[i].path), keys[i].path);
            parent = cJSON_GetObjectItemCaseSensitive(root, sec);
            if (!parent) parent = cJSON_AddObjectToObject(root, sec);
            name = dot + 1;
        }
        cJSON_AddItemToObject(parent, name, value_json(&keys[i], c));
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* Keys that change what gets reported or where, never what a training run computes: a resumed
 * run may change these freely. model.init only seeds a fresh run's weights. */
static const char *const run_neutral[] = {
    "train.out_dir", "train.log_every", "train.checkpoint_every", "train.eval_every", "train.check_every", "data.workers", "data.max_pixels",
    "data.val_split", "data.eval_size", "data.eval_crop", "calibrate.batches", "calibrate.width_step", "model.init",
    "det.score_thresh", "det.detections_per_img", "det.rpn_pre_nms_test", "det.rpn_post_nms_test",
};

static bool is_run_neutral(const char *path)
{
    for (size_t i = 0; i < sizeof run_neutral / sizeof *run_neutral; i++)
        if (!strcmp(run_neutral[i], path)) return true;
    return false;
}

int mn_config_diff(const mn_config *a, const mn_config *b, bool run_keys_only, char *out, size_t n)
{
    int count = 0;
    size_t used = 0;
    if (n) out[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        if (run_keys_only && is_run_neutral(keys[i].path)) continue;
        cJSON *va = value_json(&keys[i], a), *vb = value_json(&keys[i], b);
        char *sa = cJSON_PrintUnformatted(va), *sb = cJSON_PrintUnformatted(vb);
        if (sa && sb && strcmp(sa, sb)) {
            count++;
            if (used < n) {
                int w = snprintf(out + used, n - used, "%s%s %s -> %s", count > 1 ? ", " : "", keys[i].path, sa, sb);
                used += w > 0 ? (size_t)w : 0;
            }
        }
        free(sa);
        free(sb);
        cJSON_Delete(va);
        cJSON_Delete(vb);
    }
    return count;
}

mn_seg_aug mn_config_seg_aug(const mn_config *c, bool train)
{
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, c->data.crop[0], c->data.crop[1], train);
    aug.scale_min = c->data.scale_range[0];
    aug.scale_max = c->data.scale_range[1];
    aug.hflip = train && c->data.hflip;
    return aug;
}

mn_cls_aug mn_config_cls_aug(const mn_config *c, bool train)
{
    mn_cls_aug aug;
    if (train) mn_cls_aug_default(&aug, c->data.crop[0], c->data.crop[1], true);
    else mn_cls_aug_default(&aug, c->data.eval_size[0], c->data.eval_size[1], false);
    aug.area_min = c->data.crop_area[0];
    aug.area_max = c->data.crop_area[1];
    aug.ratio_min = c->data.crop_ratio[0];
    aug.ratio_max = c->data.crop_ratio[1];
    aug.hflip = train && c->data.hflip;
    aug.crop_fraction = c->data.eval_crop;
    return aug;
}

int mn_round32(double v)
{
    int r = (int)(v / 32.0 + 0.5) * 32;
    return r < 32 ? 32 : r;
}

void mn_config_dataset_options(const mn_config *c, const char *split, mn_dataset_options *o)
{
    *o = (mn_dataset_options){.kind = c->data.kind, .root = c->data.root, .split = split, .images = c->data.images,
                              .labels = c->data.labels, .classes = c->data.classes,
                              .annotations = c->data.annotations, .void_index = c->data.void_index,
                              .max_pixels = c->data.max_pixels};
}

void mn_config_describe(FILE *f)
{
    mn_config d;
    mn_config_default(&d);
    fprintf(f, "| key | default | meaning |\n|---|---|---|\n");
    for (int i = 0; i < N_KEYS; i++) {
        cJSON *v = value_json(&keys[i], &d);
        char *s = cJSON_PrintUnformatted(v);
        fprintf(f, "| `%s` | `%s` | %s |\n", keys[i].path, s ? s : "?", keys[i].help);
        free(s);
        cJSON_Delete(v);
    }
}
