/* The forest walk behind flowship.predict._forest (which explains the layout).
 *
 * For each block of BLOCK rows and each tree, every row takes the tree's depth in
 * steps, with no branch on the data: the next node is `left + (x > threshold)`, and a
 * leaf points at itself behind a +inf threshold. The BLOCK walks of one level are
 * independent, so the processor overlaps their memory loads. Leaf values are added to
 * `out` tree by tree, in order, as scikit-learn sums them.
 */
#include <stdint.h>

typedef struct {
    int32_t left;      /* the left child; the right child is left + 1 */
    int32_t feature;
    float threshold;   /* rounded down to float32; +inf at a leaf */
    int32_t nan_right; /* where NaN goes: 1 right, 0 left */
} node_t;

#define BLOCK 32

void flowship_walk(const float *x, int64_t n, int64_t n_features, int32_t has_nan,
                   const int32_t *roots, const int32_t *depths, int64_t n_trees,
                   const node_t *nodes, const double *values, int64_t k, double *out) {
    int32_t at[BLOCK];
    for (int64_t start = 0; start < n; start += BLOCK) {
        int64_t rows = n - start < BLOCK ? n - start : BLOCK;
        const float *block = x + start * n_features;
        double *sums = out + start * k;
        for (int64_t t = 0; t < n_trees; t++) {
            for (int64_t b = 0; b < rows; b++) at[b] = roots[t];
            for (int32_t step = 0; step < depths[t]; step++) {
                for (int64_t b = 0; b < rows; b++) {
                    const node_t *node = &nodes[at[b]];
                    float value = block[b * n_features + node->feature];
                    int32_t right = value > node->threshold;
                    if (has_nan) right |= (value != value) & (node->nan_right != 0);
                    at[b] = node->left + right;
                }
            }
            for (int64_t b = 0; b < rows; b++)
                for (int64_t c = 0; c < k; c++) sums[b * k + c] += values[(int64_t)at[b] * k + c];
        }
    }
}
