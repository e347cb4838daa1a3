"""NumPy transcription of the conv_mask layer of the authors' MATLAB release of
"Interpretable Convolutional Neural Networks" (Zhang, Wu & Zhu, CVPR 2018).

It is a test reference only, written from the release (github.com/zqs1022/interpretableCNN):
code/tool/main/getMu.m, getMask.m, our_vl_simplenn.m (case 'conv_mask', forward and backward),
our_cnn_train.m (the sliceMag update in processEpoch) and
code/tool/basic_net_functions/add_block_mask.m (posTemp, beta init 2, filter types, mag).

Layouts stay MATLAB's: feature maps are [h, w, depth, batch]; labels `cls` are
[1, 1, labelNum, batch] with entries +1/-1. Everything is computed in float64 (the release
runs in single precision on the GPU, so agreement is to float32 rounding, not bitwise).
MATLAB's NaN-ignoring max/min are np.fmax/np.fmin here.
"""

import numpy as np

STRENGTH = 1e-5  # the 0.00001 factor on both injected terms (our_vl_simplenn.m:305, :317)
ALPHA = 0.5  # our_vl_simplenn.m:267
BETA_TARGET = 3.0  # the local `beta=3` of the beta-gradient block, our_vl_simplenn.m:323
INF_FALLBACK = 10000.0  # not in MATLAB: value the PyTorch port (ada-shen/ICNN) uses when no entry is finite


def matlab_round(v):
    """MATLAB's round: half away from zero (np.round rounds half to even)."""
    v = np.asarray(v, np.float64)
    whole = np.trunc(v)
    frac = v - whole  # exact in binary floating point, so 0.49999999999999994 stays below one half
    with np.errstate(invalid="ignore"):
        return whole + np.sign(v) * (np.abs(frac) >= 0.5)


def _linspace(d1, d2, n):
    """MATLAB's linspace formula d1 + (0:n-1)*(d2-d1)/(n-1), ends pinned; n == 1 gives [d2] (numpy gives [d1])."""
    if n == 1:
        return np.array([float(d2)])
    y = d1 + (np.arange(n, dtype=np.float64) * (d2 - d1)) / (n - 1)
    y[0], y[-1] = d1, d2
    return y


def _filters(filter_type, depth):
    # add_block_mask.m with partRate=1, textureRate=0: every input channel is a part filter (type 1).
    return np.ones(depth) if filter_type is None else np.asarray(filter_type, np.float64).reshape(depth)


def _max_ignoring_nan(a):
    """MATLAB max over all entries of a non-empty array: NaN ignored, NaN only if all are NaN."""
    a = np.ravel(a)
    a = a[~np.isnan(a)]
    return np.nan if a.size == 0 else a.max()


def _replace_inf(a):
    """a(isinf(a)) = max(a(~isinf(a))): +-inf replaced by the NaN-ignoring max of the other entries.

    When every entry is infinite MATLAB's max returns an empty array and the assignment fails;
    the PyTorch port catches that and writes 10000, which we copy (INF_FALLBACK).
    """
    a = np.array(a, np.float64)
    bad = np.isinf(a)
    if bad.any():
        rest = a[~bad]
        a[bad] = INF_FALLBACK if rest.size == 0 else _max_ignoring_nan(rest)
    return a


def _nan_to_zero(a):
    a = np.array(a, np.float64)
    a[np.isnan(a)] = 0.0
    return a


def _argmax_rows(a):
    """[~, idx] = max(a, [], 2), 0-based: NaN ignored, ties to the first, an all-NaN row gives the first."""
    idx = np.zeros(a.shape[0], np.int64)
    for i, row in enumerate(a):
        ok = np.flatnonzero(~np.isnan(row))
        if ok.size:
            idx[i] = ok[np.argmax(row[ok])]  # np.argmax returns the first of equal maxima, like MATLAB
    return idx


def get_mu(x):
    """getMu.m (IsUseMax=false) on x [h, w, depth, batch].

    Returns mu_x, mu_y [1, 1, depth, batch] (values of linspace(-1, 1, h)), sqrtvar [depth, batch]
    (in pixel units, around the rounded centre) and row, col [depth, batch]: 1-based int indices.
    """
    x = np.asarray(x, np.float64)
    h, w, depth, batch = x.shape
    rows = np.arange(1, h + 1, dtype=np.float64)[:, None, None, None]  # tmp_x, getMu.m:13
    cols = np.arange(1, w + 1, dtype=np.float64)[None, :, None, None]  # tmp_y, getMu.m:14
    sum_x = np.fmax(x.sum(axis=(0, 1)), 1e-9)  # getMu.m:15; an all-zero map divides by 1e-9
    # getMu.m:16-17: rounded weighted centre, clamped below at 1 only (fmax: a NaN centre becomes 1, as in MATLAB).
    row = np.fmax(matlab_round((rows * x).sum(axis=(0, 1)) / sum_x), 1.0)
    col = np.fmax(matlab_round((cols * x).sum(axis=(0, 1)) / sum_x), 1.0)
    # getMu.m:18: spread around the ROUNDED centre, in pixels. With negative x MATLAB's sqrt would go
    # complex; numpy gives NaN (never happens after a ReLU).
    var = ((rows - row) ** 2 * x).sum(axis=(0, 1)) + ((cols - col) ** 2 * x).sum(axis=(0, 1))
    with np.errstate(invalid="ignore"):
        sqrtvar = np.sqrt(var / sum_x)
    row, col = row.astype(np.int64), col.astype(np.int64)
    # getMu.m:23-25: BOTH centres are looked up in linspace(-1, 1, h), the column one too (a release
    # quirk when h != w; a column index above h raises here as it errors in MATLAB).
    grid = _linspace(-1.0, 1.0, h)
    mu_x = grid[row - 1].reshape(1, 1, depth, batch)
    mu_y = grid[col - 1].reshape(1, 1, depth, batch)
    return mu_x, mu_y, sqrtvar, row, col


def get_mask(mu_x, mu_y, beta, h, w, filter_type=None):
    """getMask.m with add_block_mask.m's posTemp; mu_x, mu_y [1, 1, depth, batch], beta [depth].

    Returns the mask [h, w, depth, batch] = max(1 - beta * L1 distance, -1); 1 on non-part filters.
    """
    mu_x = np.asarray(mu_x, np.float64)
    mu_y = np.asarray(mu_y, np.float64)
    depth = mu_x.shape[2]
    beta = np.asarray(beta, np.float64).reshape(depth)
    pos_x = _linspace(-1.0, 1.0, h)[:, None, None, None]  # posTemp_x: varies over rows
    pos_y = _linspace(-1.0, 1.0, w)[None, :, None, None]  # posTemp_y: varies over columns
    dist = np.abs(pos_x - mu_x) + np.abs(pos_y - mu_y)
    mask = np.fmax(1.0 - dist * beta[None, None, :, None], -1.0)
    mask[:, :, _filters(filter_type, depth) != 1, :] = 1.0  # getMask.m:5
    return mask


def conv_mask_forward_input(x, mask):
    """What the conv of a conv_mask layer receives: max(x .* mask, 0), [h, w, depth, batch]."""
    return np.fmax(np.asarray(x, np.float64) * mask, 0.0)


def _div_groups(cls, slice_mag, filt):
    """The Div struct of our_vl_simplenn.m:244-262, as a list of (depthList, posList), 0-based."""
    label_num = cls.shape[2]
    depth_list = np.flatnonzero(filt > 0)  # filter>0 here; the part updates later keep filter==1 only
    if label_num == 1:
        return [(depth_list, np.flatnonzero(cls[0, 0, 0, :] == 1))]
    if slice_mag is None or np.size(slice_mag) == 0:
        # one group; an image is positive when any of its labels is +1 (max over labels)
        return [(depth_list, np.flatnonzero(cls[0, 0, :, :].max(axis=0) == 1))]
    idx = _argmax_rows(np.asarray(slice_mag, np.float64)[depth_list, :])
    return [(np.sort(depth_list[idx == lab]), np.flatnonzero(cls[0, 0, lab, :] == 1)) for lab in range(label_num)]


def conv_mask_backward(
    x,
    mask,
    dzdx_conv,
    cls,
    beta,
    sqrtvar,
    slice_mag,
    density,
    iteration,
    mag=0.1,
    filter_type=None,
    reverse_logz=True,
    constant=STRENGTH,
):
    """Backward of the 'conv_mask' case after vl_nnconv (our_vl_simplenn.m:244-332).

    x, mask, dzdx_conv: [h, w, depth, batch] (dzdx_conv: the conv's gradient w.r.t. its input);
    cls [1, 1, labelNum, batch] of +1/-1; beta [depth] (weights{3}); sqrtvar [depth, batch] from
    get_mu; slice_mag [depth, labelNum] or None; density: scalar or [labelNum]; iteration: the epoch.
    Returns dzdx [h, w, depth, batch], dzdbeta [depth] (dzdw{3}) and strength [depth, batch]
    (l.strength; None when no filter is of type 1, where MATLAB never sets it).
    """
    x = np.asarray(x, np.float64)
    mask = np.asarray(mask, np.float64)
    cls = np.asarray(cls)
    h, w, depth, batch = x.shape
    label_num, img_num = cls.shape[2], cls.shape[3]
    beta = np.asarray(beta, np.float64).reshape(depth)
    sqrtvar = np.asarray(sqrtvar, np.float64).reshape(depth, batch)
    density = np.atleast_1d(np.asarray(density, np.float64))  # MATLAB passes 0 for one label, a vector otherwise
    filt = _filters(filter_type, depth)
    groups = _div_groups(cls, slice_mag, filt)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # :268: the gradient through the mask uses max(mask, 0), not the derivative of max(x .* mask, 0)
        dzdx = np.asarray(dzdx_conv, np.float64) * np.fmax(mask, 0.0)

        strength_l = None
        if np.sum(filt == 1) > 0:  # :270
            strength_l = (x * mask).mean(axis=(0, 1))  # :271, raw mask (negative entries count)
            # :272: the release pairs x with the mask flipped over BOTH the channel and the batch axes
            mask_z = mask[:, :, ::-1, ::-1] if reverse_logz else mask
            logz_pos = np.log(np.exp((x * mask_z).mean(axis=(0, 1)) / ALPHA).mean(axis=1)) * ALPHA
            logz_neg = np.log(np.exp((-x).mean(axis=(0, 1)) / ALPHA).mean(axis=1)) * ALPHA  # :273
            logz_pos, logz_neg = _replace_inf(logz_pos), _replace_inf(logz_neg)  # :274-275

        for lab, (depth_list, pos_list) in enumerate(groups):  # :278
            if len(groups) == 1:  # numel(Div)==1, not labelNum==1 (the port tests labelNum)
                w_pos = w_neg = 1.0
            elif label_num > 10:
                w_pos, w_neg = 0.5 / (1.0 / label_num), 0.5 / (1.0 - 1.0 / label_num)
            else:
                w_pos, w_neg = 0.5 / density[lab], 0.5 / (1.0 - density[lab])
            mag_arr = np.ones((depth, img_num)) / (1.0 / iteration) / mag  # :293, i.e. iteration / mag
            d_list = depth_list[filt[depth_list] == 1]  # :295
            if d_list.size == 0:
                continue
            if pos_list.size:  # :298
                s = strength_l[np.ix_(d_list, pos_list)]
                s = np.exp(s / ALPHA) * (s - logz_pos[d_list, None] + ALPHA)  # :299
                s = _nan_to_zero(_replace_inf(s))  # :300-301, inf first, then NaN
                s = s / (s.mean(axis=1, keepdims=True) * mag_arr[np.ix_(d_list, pos_list)])  # :302
                s = _replace_inf(_nan_to_zero(s))  # :303-304, NaN first, then inf
                idx = (slice(None), slice(None), d_list[:, None], pos_list[None, :])
                dzdx[idx] = dzdx[idx] - mask[idx] * s[None, None] * (constant * w_pos)  # :305
            # :308: negatives are every image not in this group's posList (not "labels != 1")
            neg_list = np.setdiff1d(np.arange(batch), pos_list)
            if neg_list.size:
                idx = (slice(None), slice(None), d_list[:, None], neg_list[None, :])
                s = x[idx].mean(axis=(0, 1))  # :310, plain x, no mask
                s = np.exp(-s / ALPHA) * (-s - logz_neg[d_list, None] + ALPHA)  # :311
                s = _nan_to_zero(_replace_inf(s))  # :312-313
                s = s / (s.mean(axis=1, keepdims=True) * mag_arr[np.ix_(d_list, neg_list)])  # :314
                s = _replace_inf(_nan_to_zero(s))  # :315-316
                dzdx[idx] = dzdx[idx] + s[None, None] * (constant * w_neg)  # :317, uniform over h, w

        # :323-332. Groups use depthList (filter>0) here, and there is NO empty-list guard: with no
        # positive image the sums are 0, 0/0 is NaN, 3/NaN is NaN, min(NaN, 3) is 3 (MATLAB ignores
        # NaN), so the target is 3; fmin/fmax reproduce that.
        dzdbeta = np.zeros(depth)
        for depth_list, pos_list in groups:
            if depth_list.size == 0:
                continue
            if strength_l is None:
                raise ValueError("l.strength is unset (no type-1 filter): the release errors here")
            s = strength_l[np.ix_(depth_list, pos_list)]
            tmp = (s * sqrtvar[np.ix_(depth_list, pos_list)]).sum(axis=1) / s.sum(axis=1)
            target = np.fmax(np.fmin(BETA_TARGET / tmp, 3.0), 1.5)
            dzdbeta[depth_list] = (target - beta[depth_list]) * (-10000.0)
    return dzdx, dzdbeta, strength_l


def update_slice_mag(slice_mag, x, cls):
    """The sliceMag update of our_cnn_train.m (processEpoch, after each training batch).

    x: the conv_mask layer's input [h, w, depth, batch]; cls [1, 1, labelNum, batch].
    Returns the new slice_mag [depth, labelNum]; None or empty starts from zeros.
    """
    x = np.asarray(x, np.float64)
    cls = np.asarray(cls)
    depth, label_num = x.shape[2], cls.shape[2]
    if slice_mag is None or np.size(slice_mag) == 0:
        out = np.zeros((depth, label_num))
    else:
        out = np.array(slice_mag, np.float64).reshape(depth, label_num)
    for lab in range(label_num):  # sequential: a later label's quirk reads the already-updated column 0
        pos = cls[0, 0, lab, :] == 1
        if not pos.any():  # tmp is empty: skipped
            continue
        peak = np.fmax.reduce(x[:, :, :, pos], axis=(0, 1))  # spatial max per channel and image, NaN ignored
        mean_peak = peak.mean(axis=1)  # [depth]
        if out[:, lab].sum() == 0:
            out[:, lab] = np.fmax(mean_peak, 0.1)  # first time: floor at 0.1
        else:
            # Quirk: the release indexes the WHOLE [depth, labelNum] matrix with a depth-long logical,
            # i.e. linearly, which reads column 1 (here column 0) whatever `lab` is.
            zero = mean_peak == 0
            mean_peak[zero] = out.ravel(order="F")[:depth][zero]
            out[:, lab] = out[:, lab] * 0.9 + mean_peak * (1 - 0.9)
    return out
