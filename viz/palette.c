/* Colour maps: the VOC label palette, detection class colours, chart series colours, and the
 * choice of black or white text on a coloured background. */
#include <math.h>

#include "mn/viz.h"

mn_rgb mn_viz_voc_color(int index)
{
    /* Deal the index bits round-robin to R, G, B starting at each channel's top bit: the first
     * eight classes get the corners of the colour cube at half intensity, later ones finer
     * steps, so small indices stay far apart. */
    unsigned v = (unsigned)index & 255u;
    unsigned r = 0, g = 0, b = 0;
    for (int bit = 7; bit >= 0 && v; bit--) {
        r |= (v & 1u) << bit;
        g |= ((v >> 1) & 1u) << bit;
        b |= ((v >> 2) & 1u) << bit;
        v >>= 3;
    }
    return (mn_rgb){(uint8_t)r, (uint8_t)g, (uint8_t)b};
}

void mn_viz_voc_palette(uint8_t *rgb /* (256, 3) */)
{
    for (int i = 0; i < 256; i++) {
        mn_rgb c = mn_viz_voc_color(i);
        rgb[3 * i + 0] = c.r;
        rgb[3 * i + 1] = c.g;
        rgb[3 * i + 2] = c.b;
    }
}

static mn_rgb hsv(double h, double s, double v)
{
    h = (h - floor(h)) * 6.0;
    int sector = (int)h % 6;
    double f = h - floor(h);
    double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (sector) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    return (mn_rgb){(uint8_t)lrint(r * 255), (uint8_t)lrint(g * 255), (uint8_t)lrint(b * 255)};
}

static double linear(uint8_t c)
{
    double v = c / 255.0;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double lab_f(double t) { return t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0; }

/* CIE L*a*b* (D65) of an sRGB colour: distances there follow perceived differences. */
static void to_lab(mn_rgb c, double lab[3])
{
    double r = linear(c.r), g = linear(c.g), b = linear(c.b);
    double fx = lab_f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047);
    double fy = lab_f(0.2126 * r + 0.7152 * g + 0.0722 * b);
    double fz = lab_f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
    lab[0] = 116 * fy - 16;
    lab[1] = 500 * (fx - fy);
    lab[2] = 200 * (fy - fz);
}

/* Saturation and brightness levels of the class colours: all bright enough to stand out on
 * photos and to carry black or white text. */
#define N_SV 5
static const double levels[N_SV][2] = {{0.95, 1.0}, {0.6, 1.0}, {1.0, 0.78}, {0.75, 0.9}, {0.45, 0.95}};
#define N_HUES 90
#define N_CAND (N_HUES * N_SV)

static mn_rgb golden(int k)
{
    return hsv(0.3819660112501051 * (double)k, levels[k % N_SV][0], levels[k % N_SV][1]);
}

void mn_viz_class_colors(int n, mn_rgb *out /* (n) */)
{
    /* Candidates: every 4 degrees of hue at each level. Each class takes the candidate farthest
     * in L*a*b* from all earlier classes (greedy farthest-point order, the first of equals on
     * ties), starting from bright red: the first classes are as different as colours can be and
     * later ones fill the gaps. */
    int greedy = n < MN_VIZ_GREEDY_COLORS ? n : MN_VIZ_GREEDY_COLORS;
    if (greedy > 0) {
        mn_rgb cand[N_CAND];
        double lab[N_CAND][3], dist[N_CAND];
        for (int i = 0; i < N_CAND; i++) {
            int h = i / N_SV, v = i % N_SV;
            cand[i] = hsv(h / (double)N_HUES, levels[v][0], levels[v][1]);
            to_lab(cand[i], lab[i]);
            dist[i] = INFINITY;
        }
        int pick = 0;
        for (int k = 0; k < greedy; k++) {
            out[k] = cand[pick];
            double best = -1;
            int next = 0;
            for (int i = 0; i < N_CAND; i++) {
                double d0 = lab[i][0] - lab[pick][0], d1 = lab[i][1] - lab[pick][1], d2 = lab[i][2] - lab[pick][2];
                double d = d0 * d0 + d1 * d1 + d2 * d2;
                if (d < dist[i]) dist[i] = d;
                if (dist[i] > best) best = dist[i], next = i;
            }
            pick = next;
        }
    }
    for (int k = greedy; k < n; k++) out[k] = golden(k);
}

mn_rgb mn_viz_class_color(int k)
{
    if (k < 0) k = -k;
    if (k >= MN_VIZ_GREEDY_COLORS) return golden(k);
    mn_rgb tab[MN_VIZ_GREEDY_COLORS];
    mn_viz_class_colors(k + 1, tab);
    return tab[k];
}

mn_rgb mn_viz_series_color(int i)
{
    static const mn_rgb tab[10] = {
        {31, 100, 190}, {235, 120, 20}, {40, 150, 60}, {205, 40, 50}, {130, 80, 180},
        {140, 90, 55},  {215, 90, 170}, {105, 105, 105}, {165, 165, 20}, {20, 165, 190},
    };
    if (i < 0) i = -i;
    return tab[i % 10];
}

mn_rgb mn_viz_text_color_on(mn_rgb bg)
{
    double lum = 0.2126 * linear(bg.r) + 0.7152 * linear(bg.g) + 0.0722 * linear(bg.b);
    double with_white = 1.05 / (lum + 0.05), with_black = (lum + 0.05) / 0.05;
    return with_black >= with_white ? (mn_rgb){0, 0, 0} : (mn_rgb){255, 255, 255};
}
