/* Batches made ahead of time by background threads. What a batch holds depends only on
 * (seed, epoch, position): the epoch's order is a shuffle seeded by (seed, epoch) and each
 * sample's augmentation draws from a stream split off by its position, so results do not
 * depend on which thread made which batch, or on resuming mid-epoch. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/dataset.h"

enum { SLOT_FREE, SLOT_LOADING, SLOT_READY };
enum kind { KIND_SEG, KIND_DET, KIND_CLS };
static const char *const kind_calls[] = {"mn_loader_next", "mn_loader_next_det", "mn_loader_next_cls"};

typedef struct slot {
    mn_seg_batch batch;        /* the slot's batch, by the loader's kind */
    mn_det_batch det;
    mn_cls_batch cls;
    int state, rc;
    int index;                 /* batch index within the epoch */
    char err[512];
} slot;

struct mn_loader {
    mn_dataset *d;
    enum kind kind;
    mn_seg_aug aug;
    mn_det_aug daug;
    mn_cls_aug caug;
    mn_loader_options o;
    int n_items, n_batches;
    int *order;                /* this epoch's permutation */
    mn_rng epoch_rng;
    slot *slots;
    int n_slots;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int next_claim;            /* next batch index a worker may make */
    int cursor;                /* next batch index handed to the caller */
    int low;                   /* lowest batch index still holding a slot */
    int in_flight;
    bool stop, active;
};

int mn_loader_batches_per_epoch(const mn_loader *l) { return l->n_batches; }

/* The samples of batch b of the current epoch, one at a time: each is loaded, given the random
 * stream of its position in the epoch, handed to `place` with its slot j in the batch and its
 * data set index, and freed. *n = the batch's size. Segmentation and classification batches are
 * made this way. */
/* This process's positions [*lo, *hi) of a batch of n (mn_loader_options.rank). */
static void slice(const mn_loader *l, int n, int *lo, int *hi)
{
    int R = l->o.ranks > 1 ? l->o.ranks : 1, r = l->o.ranks > 1 ? l->o.rank : 0;
    *lo = (int)((int64_t)n * r / R);
    *hi = (int)((int64_t)n * (r + 1) / R);
}

static int each_sample(mn_loader *l, int b, slot *s, int *n,
                       int (*place)(mn_loader *l, slot *s, int j, int index, const mn_sample *smp, mn_rng *r))
{
    int B = l->o.batch_size, first = b * B, lo, hi;
    slice(l, l->n_items - first < B ? l->n_items - first : B, &lo, &hi);
    *n = hi - lo;
    for (int j = 0; j < *n; j++) {
        mn_sample smp;
        int at = first + lo + j; /* the position in the epoch keys the sample's random stream */
        int rc = mn_dataset_get(l->d, l->order[at], &smp);
        if (rc) return rc;
        mn_rng r = mn_rng_split(&l->epoch_rng, (uint64_t)at);
        rc = place(l, s, j, l->order[at], &smp, &r);
        mn_sample_free(&smp);
        if (rc) return rc;
    }
    return 0;
}

static int place_seg(mn_loader *l, slot *s, int j, int index, const mn_sample *smp, mn_rng *r)
{
    mn_seg_batch *bt = &s->batch;
    int64_t hw = (int64_t)l->aug.crop_h * l->aug.crop_w;
    bt->index[j] = index;
    return mn_seg_transform(&l->aug, smp, r, bt->images + j * 3 * hw, bt->labels + j * hw);
}

static int make_batch(mn_loader *l, int b, slot *s)
{
    mn_seg_batch *bt = &s->batch;
    bt->h = l->aug.crop_h;
    bt->w = l->aug.crop_w;
    return each_sample(l, b, s, &bt->n, place_seg);
}

/* Detection: loads the batch's samples, pads to the largest resized size among them, then
 * transforms each into its place. The flip draws from the same per-position stream as the
 * segmentation augmentation, so contents depend only on (seed, epoch, position). */
static int make_det_batch(mn_loader *l, int b, slot *s)
{
    int B = l->o.batch_size;
    int first = b * B, n = l->n_items - first < B ? l->n_items - first : B;
    mn_det_batch *bt = &s->det;
    mn_sample smp[MN_MAX_BATCH];
    int loaded = 0, rc = 0, ph = 0, pw = 0;
    for (; loaded < n && !rc; loaded++) {
        int idx = l->order[first + loaded];
        if ((rc = mn_dataset_get(l->d, idx, &smp[loaded]))) break;
        int oh = 0, ow = 0;
        rc = mn_det_resize_shape(&l->daug, smp[loaded].image.h, smp[loaded].image.w, &oh, &ow, NULL);
        if (oh > ph) ph = oh;
        if (ow > pw) pw = ow;
    }
    int m = l->daug.size_divisible > 1 ? l->daug.size_divisible : 1;
    ph = (ph + m - 1) / m * m;
    pw = (pw + m - 1) / m * m;
    /* every sample was read for the padded size; this process transforms its own part */
    int lo, hi;
    slice(l, n, &lo, &hi);
    int all = loaded;
    n = hi - lo;
    size_t need = (size_t)n * 3 * (size_t)ph * (size_t)pw;
    if (!rc && need > bt->cap_images) {
        float *p = realloc(bt->images, sizeof(float) * need);
        if (!p) rc = mn_error(MN_ENOMEM, "loader: cannot allocate a %d x 3 x %d x %d batch", n, ph, pw);
        else {
            bt->images = p;
            bt->cap_images = need;
        }
    }
    bt->n = n;
    bt->h = ph;
    bt->w = pw;
    for (int j = 0; j < n && !rc; j++) {
        mn_sample *sp = &smp[lo + j];
        if (sp->n_boxes > bt->cap_boxes[j]) {
            mn_box *p = realloc(bt->boxes[j], sizeof(mn_box) * (size_t)sp->n_boxes);
            if (!p) {
                rc = mn_error(MN_ENOMEM, "loader: cannot allocate %d boxes", sp->n_boxes);
                break;
            }
            bt->boxes[j] = p;
            bt->cap_boxes[j] = sp->n_boxes;
        }
        bt->index[j] = l->order[first + lo + j];
        bt->image_id[j] = sp->image_id;
        mn_rng r = mn_rng_split(&l->epoch_rng, (uint64_t)(first + lo + j));
        rc = mn_det_transform(&l->daug, sp, &r, bt->images + (size_t)j * 3 * (size_t)ph * (size_t)pw, ph, pw,
                              bt->boxes[j], &bt->n_boxes[j], &bt->info[j]);
        bt->info[j].position = lo + j;
    }
    for (int j = 0; j < all; j++) mn_sample_free(&smp[j]);
    return rc;
}

/* Classification: each sample's crop and flip into its place, its class beside it. */
static int place_cls(mn_loader *l, slot *s, int j, int index, const mn_sample *smp, mn_rng *r)
{
    mn_cls_batch *bt = &s->cls;
    bt->index[j] = index;
    bt->classes[j] = smp->class_id;
    if (smp->class_id < 0)
        return mn_error(MN_EINVAL, "%s: the image has no class (a classification loader needs one)", smp->name);
    return mn_cls_transform(&l->caug, smp, r, bt->images + (int64_t)j * 3 * l->caug.out_h * l->caug.out_w);
}

static int make_cls_batch(mn_loader *l, int b, slot *s)
{
    mn_cls_batch *bt = &s->cls;
    bt->h = l->caug.out_h;
    bt->w = l->caug.out_w;
    return each_sample(l, b, s, &bt->n, place_cls);
}

static int make(mn_loader *l, int b, slot *s)
{
    return l->kind == KIND_DET ? make_det_batch(l, b, s) : l->kind == KIND_CLS ? make_cls_batch(l, b, s) : make_batch(l, b, s);
}

static void *worker(void *arg)
{
    mn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !(l->active && l->next_claim < l->n_batches && l->next_claim < l->low + l->n_slots))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop) break;
        int b = l->next_claim++;
        slot *s = &l->slots[b % l->n_slots];
        s->state = SLOT_LOADING;
        s->index = b;
        l->in_flight++;
        pthread_mutex_unlock(&l->mu);
        int rc = make(l, b, s);
        pthread_mutex_lock(&l->mu);
        s->rc = rc;
        if (rc) snprintf(s->err, sizeof s->err, "%s", mn_last_error());
        s->state = SLOT_READY;
        l->in_flight--;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Opens a loader of the given kind; aug is that kind's augmentation (mn_seg_aug, mn_det_aug or
 * mn_cls_aug). */
static int open_loader(mn_loader **out, mn_dataset *d, enum kind kind, const void *aug, const mn_loader_options *o)
{
    *out = NULL;
    if (o->batch_size < 1 || o->batch_size > MN_MAX_BATCH)
        return mn_error(MN_EINVAL, "batch size %d outside [1, %d]", o->batch_size, MN_MAX_BATCH);
    /* training batches split evenly (BN statistics, equal shares); evaluation takes what comes */
    if (o->ranks > 1 && (o->rank < 0 || o->rank >= o->ranks || (o->drop_last && o->batch_size % o->ranks)))
        return mn_error(MN_EINVAL, "the global batch of %d does not split into %d equal parts (rank %d): make "
                                   "train.batch_size a multiple of the rank count",
                        o->batch_size, o->ranks, o->rank);
    mn_loader *l = calloc(1, sizeof *l);
    if (!l) return mn_error(MN_ENOMEM, "loader: out of memory");
    l->d = d;
    l->kind = kind;
    if (kind == KIND_SEG) l->aug = *(const mn_seg_aug *)aug;
    if (kind == KIND_DET) l->daug = *(const mn_det_aug *)aug;
    if (kind == KIND_CLS) l->caug = *(const mn_cls_aug *)aug;
    l->o = *o;
    l->n_items = mn_dataset_size(d);
    l->n_batches = o->drop_last ? l->n_items / o->batch_size : (l->n_items + o->batch_size - 1) / o->batch_size;
    l->n_slots = o->workers > 0 ? (o->prefetch > 0 ? o->prefetch : 2) + o->workers : 1;
    l->order = malloc(sizeof(int) * (size_t)l->n_items);
    l->slots = calloc((size_t)l->n_slots, sizeof *l->slots);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int rc = (!l->order || !l->slots) ? mn_error(MN_ENOMEM, "loader: out of memory") : 0;
    /* detection batches grow to the images they hold; the others have one size */
    int64_t px = (int64_t)o->batch_size * (kind == KIND_SEG ? (int64_t)l->aug.crop_h * l->aug.crop_w
                                           : kind == KIND_CLS ? (int64_t)l->caug.out_h * l->caug.out_w : 0);
    for (int i = 0; !rc && px && i < l->n_slots; i++) {
        float **images = kind == KIND_SEG ? &l->slots[i].batch.images : &l->slots[i].cls.images;
        *images = malloc(sizeof(float) * (size_t)(3 * px));
        if (kind == KIND_SEG) l->slots[i].batch.labels = malloc(sizeof(int32_t) * (size_t)px);
        if (!*images || (kind == KIND_SEG && !l->slots[i].batch.labels)) rc = mn_error(MN_ENOMEM, "loader: out of memory");
    }
    if (!rc && o->workers > 0) {
        l->threads = calloc((size_t)o->workers, sizeof *l->threads);
        for (int i = 0; l->threads && i < o->workers; i++) {
            if (pthread_create(&l->threads[i], NULL, worker, l)) {
                rc = mn_error(MN_ENOMEM, "loader: cannot start a worker thread");
                break;
            }
            l->n_threads++;
        }
    }
    if (rc) {
        mn_loader_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

int mn_loader_open(mn_loader **out, mn_dataset *d, const mn_seg_aug *aug, const mn_loader_options *o)
{
    return open_loader(out, d, KIND_SEG, aug, o);
}

int mn_loader_open_det(mn_loader **out, mn_dataset *d, const mn_det_aug *aug, const mn_loader_options *o)
{
    *out = NULL;
    if (aug->min_size < 1 || aug->max_size < 1 || aug->size_divisible < 1)
        return mn_error(MN_EINVAL, "detection loader: min_size %d, max_size %d, size_divisible %d must be positive",
                        aug->min_size, aug->max_size, aug->size_divisible);
    return open_loader(out, d, KIND_DET, aug, o);
}

int mn_loader_open_cls(mn_loader **out, mn_dataset *d, const mn_cls_aug *aug, const mn_loader_options *o)
{
    *out = NULL;
    if (aug->out_h < 1 || aug->out_w < 1 || aug->out_h > 16384 || aug->out_w > 16384)
        return mn_error(MN_EINVAL, "classification loader: output %dx%d", aug->out_h, aug->out_w);
    return open_loader(out, d, KIND_CLS, aug, o);
}

int mn_loader_start(mn_loader *l, int epoch, int first)
{
    pthread_mutex_lock(&l->mu);
    l->active = false;
    while (l->in_flight > 0) pthread_cond_wait(&l->cv, &l->mu); /* let the old epoch's work finish */
    for (int i = 0; i < l->n_items; i++) l->order[i] = i;
    mn_rng base;
    mn_rng_seed(&base, l->o.seed);
    l->epoch_rng = mn_rng_split(&base, (uint64_t)epoch);
    if (l->o.shuffle) {
        mn_rng sh = mn_rng_split(&l->epoch_rng, UINT64_MAX);
        mn_rng_shuffle(&sh, l->order, l->n_items);
    }
    for (int i = 0; i < l->n_slots; i++) l->slots[i].state = SLOT_FREE;
    if (first < 0) first = 0;
    l->next_claim = l->cursor = l->low = first;
    l->active = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* Hands out the next batch's slot (made here without workers), or NULL at the epoch's end. */
static int next_slot(mn_loader *l, slot **out)
{
    *out = NULL;
    if (!l->active) return mn_error(MN_EINVAL, "loader: mn_loader_start was not called");
    if (l->cursor >= l->n_batches) return 0;
    int b = l->cursor;
    slot *s = &l->slots[b % l->n_slots];
    if (l->n_threads == 0) {
        s->rc = make(l, b, s);
        if (s->rc) return s->rc;
    } else {
        pthread_mutex_lock(&l->mu);
        l->low = b; /* the batch returned last time is released now */
        pthread_cond_broadcast(&l->cv);
        while (!(s->state == SLOT_READY && s->index == b)) pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
        if (s->rc) return mn_error(s->rc, "%s", s->err);
    }
    l->cursor++;
    *out = s;
    return 0;
}

/* The next slot of a loader that must be of kind `kind` (each kind refuses the others' calls). */
static int next_of(mn_loader *l, enum kind kind, slot **out)
{
    *out = NULL;
    if (l->kind != kind)
        return mn_error(MN_EINVAL, "loader: this loader gives batches through %s, not %s", kind_calls[l->kind], kind_calls[kind]);
    return next_slot(l, out);
}

int mn_loader_next(mn_loader *l, const mn_seg_batch **out)
{
    slot *s;
    int rc = next_of(l, KIND_SEG, &s);
    *out = s ? &s->batch : NULL;
    return rc;
}

int mn_loader_next_det(mn_loader *l, const mn_det_batch **out)
{
    slot *s;
    int rc = next_of(l, KIND_DET, &s);
    *out = s ? &s->det : NULL;
    return rc;
}

int mn_loader_next_cls(mn_loader *l, const mn_cls_batch **out)
{
    slot *s;
    int rc = next_of(l, KIND_CLS, &s);
    *out = s ? &s->cls : NULL;
    return rc;
}

int mn_loader_next_images(mn_loader *l, int *n, int *h, int *w, const float **images)
{
    *n = *h = *w = 0;
    *images = NULL;
    if (l->kind == KIND_DET) return mn_error(MN_EINVAL, "loader: a detection loader's images differ in size; use mn_loader_next_det");
    slot *s;
    int rc = next_of(l, l->kind, &s);
    if (rc || !s) return rc;
    *n = l->kind == KIND_CLS ? s->cls.n : s->batch.n;
    *h = l->kind == KIND_CLS ? s->cls.h : s->batch.h;
    *w = l->kind == KIND_CLS ? s->cls.w : s->batch.w;
    *images = l->kind == KIND_CLS ? s->cls.images : s->batch.images;
    return 0;
}

void mn_loader_close(mn_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
    for (int i = 0; l->slots && i < l->n_slots; i++) {
        free(l->slots[i].batch.images);
        free(l->slots[i].batch.labels);
        free(l->slots[i].cls.images);
        mn_det_batch_free(&l->slots[i].det);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->slots);
    free(l->threads);
    free(l->order);
    free(l);
}
