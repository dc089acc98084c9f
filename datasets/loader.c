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

typedef struct slot {
    mn_seg_batch batch;
    int state, rc;
    int index;                 /* batch index within the epoch */
    char err[512];
} slot;

struct mn_loader {
    mn_dataset *d;
    mn_seg_aug aug;
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

/* Loads and augments the samples of batch b of the current epoch into s. */
static int make_batch(mn_loader *l, int b, slot *s)
{
    int B = l->o.batch_size, H = l->aug.crop_h, W = l->aug.crop_w;
    int first = b * B, n = l->n_items - first < B ? l->n_items - first : B;
    mn_seg_batch *bt = &s->batch;
    bt->n = n;
    bt->h = H;
    bt->w = W;
    for (int j = 0; j < n; j++) {
        int idx = l->order[first + j];
        bt->index[j] = idx;
        mn_sample smp;
        int rc = mn_dataset_get(l->d, idx, &smp);
        if (rc) return rc;
        mn_rng r = mn_rng_split(&l->epoch_rng, (uint64_t)(first + j));
        rc = mn_seg_transform(&l->aug, &smp, &r, bt->images + (int64_t)j * 3 * H * W, bt->labels + (int64_t)j * H * W);
        mn_sample_free(&smp);
        if (rc) return rc;
    }
    return 0;
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
        int rc = make_batch(l, b, s);
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

int mn_loader_open(mn_loader **out, mn_dataset *d, const mn_seg_aug *aug, const mn_loader_options *o)
{
    *out = NULL;
    if (o->batch_size < 1 || o->batch_size > 64) return mn_error(MN_EINVAL, "batch size %d outside [1, 64]", o->batch_size);
    mn_loader *l = calloc(1, sizeof *l);
    if (!l) return mn_error(MN_ENOMEM, "loader: out of memory");
    l->d = d;
    l->aug = *aug;
    l->o = *o;
    l->n_items = mn_dataset_size(d);
    l->n_batches = o->drop_last ? l->n_items / o->batch_size : (l->n_items + o->batch_size - 1) / o->batch_size;
    l->n_slots = o->workers > 0 ? (o->prefetch > 0 ? o->prefetch : 2) + o->workers : 1;
    l->order = malloc(sizeof(int) * (size_t)l->n_items);
    l->slots = calloc((size_t)l->n_slots, sizeof *l->slots);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    int rc = (!l->order || !l->slots) ? mn_error(MN_ENOMEM, "loader: out of memory") : 0;
    int64_t px = (int64_t)aug->crop_h * aug->crop_w * o->batch_size;
    for (int i = 0; !rc && i < l->n_slots; i++) {
        l->slots[i].batch.images = malloc(sizeof(float) * (size_t)(3 * px));
        l->slots[i].batch.labels = malloc(sizeof(int32_t) * (size_t)px);
        if (!l->slots[i].batch.images || !l->slots[i].batch.labels) rc = mn_error(MN_ENOMEM, "loader: out of memory");
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

int mn_loader_next(mn_loader *l, const mn_seg_batch **out)
{
    *out = NULL;
    if (!l->active) return mn_error(MN_EINVAL, "loader: mn_loader_start was not called");
    if (l->cursor >= l->n_batches) return 0;
    int b = l->cursor;
    slot *s = &l->slots[b % l->n_slots];
    if (l->n_threads == 0) {
        s->rc = make_batch(l, b, s);
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
    *out = &s->batch;
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
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->slots);
    free(l->threads);
    free(l->order);
    free(l);
}
