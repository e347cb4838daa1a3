"""NumPy (float64) reference transcription of the released explanatory-graph code.

This module is a loop-by-loop transcription of the authors' released MATLAB/C++
code for "Interpreting CNN Knowledge via an Explanatory Graph" (Zhang et al.,
AAAI 2018; github.com/zqs1022/explanatoryGraph).  It is written from the
release only, independently of ``interp.explain``, so that tests can compare
the JAX implementation against what the authors actually ran.  Files followed:

* ``code/learn_explanatoryGraph.m``  -- the ``parfor imgID`` body (:func:`image_update`)
  and ``updateModel`` (:func:`m_step`)
* ``code/tool/main/doE.m`` + ``code/tool/main/getProb_local_mex.cpp`` (:func:`e_step`)
* ``code/tool/main/getOtherProb.cpp`` (inside :func:`image_update`)
* ``code/tool/main/getCurDistribution.m`` (:func:`parents`, :func:`first_iteration`)
* ``code/tool/main/doFlipConfigureation.m`` (:func:`flip_choice`)
* ``code/tool/simple_func/getBasicSettings.m`` (:func:`basic_settings`)
* ``code/tool/simple_func/x2p_.m`` (:func:`x2p`)
* ``code/tool/simple_func/getDistSqrtVar.m`` (:func:`dist_sqrt_var`)
* ``code/tool/main/computeStability_raw.m`` (:func:`raw_filter_peaks`)
* ``code/getNetParameters.m`` (the defaults: positionCandNum 6, map_delta 0.025,
  maxRange 0.3, deform_ratio 3, init_delta 0.15, validTau 0.1)

Layout and conventions are the release's: node ``(pattern i, channel ch)`` is
column ``ch*P + i`` (MATLAB column-major flattening of ``[P, C]``); positions are
1-based (row h, column w) exactly as the release stores them; candidate ``j`` of a
node is ``p1*K + p2`` with ``p1`` the column (w) offset index and ``p2`` the row (h)
offset index, as the mex loops.  Feature maps are ``x[h, w, c]`` (0-based numpy
indices of MATLAB's ``x(h+1, w+1, c+1)``).  MATLAB ``round`` and C ``round`` are both
half away from zero (:func:`matlab_round`).  MATLAB ``max``/``min`` ignore NaN, so
the transcription uses ``np.fmax``/``np.fmin`` where the release calls them.
MATLAB ``sort`` is stable (ties keep their order), so ``argsort(kind="stable")``.

Quirk with a flag (set the flag to turn the quirk off):

* ``e_step(..., release_indexing=True)``: ``getProb_local_mex.cpp`` reads the
  deformation sigma as ``deform_delta[i]`` and the window as ``halfRange[i]`` with
  ``i`` the pattern index *within* the channel, not ``ch*P + i``; so every channel
  uses channel 1's curDelta and halfRange (Gaussian width of the deformation
  prior, size of the response window and of the smoothing template).  The
  candidate offsets ``posCand`` are read with the node's own index.
  ``release_indexing=False`` reads node ``(ch, i)``'s own sigma and halfRange.

Quirks kept without a flag (the release's semantics, transcribed as is):

1. The mex's ``deform_delta`` argument is ``curDelta`` (from the parents, see
   getCurDistribution), not the model's ``deform``; the model's ``deform`` only sets
   ``halfRange`` and ``posCand`` through getBasicSettings.
2. The response window is centred on the C-``round``-ed ``coord + curMu - 1``, and the
   smoothing template treats ``posCand`` as offsets from that rounded centre, while
   the reported candidate positions ``pos`` are offsets from the unrounded
   ``coord + curMu`` (computed as ``(coord - 1) + 1 + posCand`` as in the C code).
3. Smoothing template: a 2-D Gaussian of sigma ``map_delta`` normalised with the 1-D
   constant ``sqrt(2*pi)*sigma``; entries with squared distance ``>= (3*sigma)^2``
   (``tooFar = 3``) are set to ``tooSmall = exp(-4.5)/(sqrt(2*pi)*sigma)``, not 0.
   ``pi = 3.1415926536`` as in the mex.
4. Response map: ``max(x, 0)`` through the C macro ``(a)>(b)?(a):(b)`` (so NaN -> 0);
   pixels outside the map are 0.
5. Names as in the release: ``prob`` is the deformation term (product of two 1-D
   normalised Gaussians of the candidate offsets, times curLambda) and ``prior`` is
   the image evidence (template-weighted response sum).
6. getOtherProb: the other node's bounding box is read from its first and last
   candidate (``pos[0], pos[1], pos[2c-2], pos[2c-1]``); outside it the value is 0;
   inside it the nearest candidate wins with strict ``<`` (first in candidate order
   wins ties; ``minDist`` starts at 1e8); the node itself is included in the sum.
7. ``tau = validTau * mean(sum(prob, 1), 2)``: one scalar per image, over all nodes
   of all channels; ``normProb = prob ./ max(sumProb + tau, 1e-7)``.
8. ``totalPosVar`` weights candidates by squared distance in candidate-index units
   ``(a - mean)^2 + (b - mean)^2``, and updateModel turns it into pixels with
   ``unit = posCand(2,:) - posCand(1,:)`` of the ``pos_cand`` it is given; the release
   gives the posCand computed once per layer from the *initial* deform (before the
   ``for iter`` loop), not the current one.
9. updateModel: the coord step is ``eta * minDelta^2`` times the normalised log
   derivative sum, with ``minDelta = min(curDelta(:)) / iter^0.25`` (the caller's);
   ``max(sum(totalNormProb,2), 1e-8)``; deform is clamped with NaN-ignoring max/min
   (a 0/0 deform becomes the minimum).  The release stores deform as a column
   ``[P*C, 1]``; :func:`m_step` returns it reshaped column-major to ``[P, C]``.
   ``prob_record = totalProb / mean(mean(totalProb, 2), 1)``.
10. ``inferredProb = prob(idx) .* prior(idx)`` at the first-max candidate of ``prob.*prior``.
11. getCurDistribution: parents are searched only when ``layerID < layerNum`` and
    ``iter > 1`` (else :func:`first_iteration`); the edge cut compares the *upper*
    layer's mean positions with the *current* layer's ``xh``; ``x2p_`` is applied to
    mean-centred positions (so a constant ``center - stride`` offset per layer stays
    in the distances); the lowest-variance ``ceil(M/2)`` upper nodes are dropped;
    ``curMu`` is built from the upper layer's centred positions in *upper-layer map
    units* and added to the current layer's coord; ``infer_poster`` is uniform
    ``1/topN``; ``curLambda`` ends multiplied by ``curDelta``.  Fewer than ``topM``
    surviving candidates is an index error in MATLAB (a ValueError here).
12. doFlipConfigureation: flipped is chosen when
    ``sum(log(prob(:)).*prior(:))`` is strictly smaller than the flipped one
    (``log(0)*0 = NaN`` makes the comparison false, i.e. not flipped).
13. getDistSqrtVar: an absent part is stored as the sentinel ``invalidNum = 100000``
    in both coordinates and detected by the first coordinate only; MATLAB ``var``
    (N-1 normalisation, 0 for one sample, NaN for none) of the distances over the
    top ``patchNumPerPattern`` images (stable descending sort of prob) that have the
    part; the sqrt-variances are averaged over parts.
14. computeStability_raw: the peak is MATLAB's ``max`` over rows then over columns,
    i.e. the first maximum in column-major order; its position goes through ``x2p_``.
15. The parfor body raises when prob/prior/logDer/pos contain NaN (``error('Here')``);
    :func:`image_update` raises ``FloatingPointError`` likewise.
"""

from __future__ import annotations

import math

import numpy as np

# getProb_local_mex.cpp: #define pi 3.1415926536, #define tooFar 3.0, sqrt2pi=sqrt(2*pi)
PI = 3.1415926536
TOO_FAR = 3.0
SQRT2PI = math.sqrt(2 * PI)

# getCurDistribution.m
MIN_VAR_RATE = 0.5
EDGE_CUT_RATE = 0.1

# getDistSqrtVar.m
INVALID_NUM = 100000


# ----------------------------------------------------------------------------------------
# MATLAB / C helpers
# ----------------------------------------------------------------------------------------


def matlab_round(v):
    """MATLAB ``round`` / C ``round``: half away from zero (exact; no ``floor(v + 0.5)``)."""
    v = np.asarray(v, dtype=np.float64)
    t = np.trunc(v)
    with np.errstate(invalid="ignore"):
        frac = np.abs(v - t)  # exact for finite floats
        out = np.where(frac >= 0.5, t + np.sign(v), t)
    return out


def _c_round(v: float) -> float:
    return float(matlab_round(v))


def matlab_linspace(d1: float, d2: float, n: int) -> np.ndarray:
    """MATLAB ``linspace(d1, d2, n)``: ``d1 + (0:n1).*(d2-d1)./n1`` with exact endpoints."""
    n1 = n - 1
    y = d1 + (np.arange(n, dtype=np.float64) * (d2 - d1)) / n1
    if y.size:
        if d1 == d2:
            y[:] = d1
        else:
            y[0] = d1
            y[-1] = d2
    return y


def _matlab_var(v, axis=-1):
    """MATLAB ``var(v, [], axis)``: N-1 normalisation, 0 for one sample, NaN for none."""
    v = np.asarray(v, dtype=np.float64)
    n = v.shape[axis]
    if n == 0:
        return np.full(np.delete(np.array(v.shape), axis % v.ndim), np.nan)
    if n == 1:
        return np.zeros(np.delete(np.array(v.shape), axis % v.ndim))
    mu = np.sum(v, axis=axis, keepdims=True) / n
    return np.sum(np.abs(v - mu) ** 2, axis=axis) / (n - 1)


def _first_max(v):
    """MATLAB ``[m, i] = max(v)`` on a vector: NaN ignored, first maximum (0-based index)."""
    v = np.asarray(v, dtype=np.float64)
    best = None
    for k in range(v.size):
        if np.isnan(v[k]):
            continue
        if best is None or v[k] > v[best]:
            best = k
    if best is None:  # all NaN: MATLAB returns NaN at index 1
        return np.nan, 0
    return v[best], best


def _sort_ascend(v) -> np.ndarray:
    """0-based indices of MATLAB ``[~, i] = sort(v, 'ascend')`` (stable)."""
    return np.argsort(np.asarray(v, dtype=np.float64), kind="stable")


def _sort_descend(v) -> np.ndarray:
    """0-based indices of MATLAB ``[~, i] = sort(v, 'descend')`` (stable: equal values keep order)."""
    return np.argsort(-np.asarray(v, dtype=np.float64), kind="stable")


def _setdiff_stable(a, b) -> np.ndarray:
    """MATLAB ``setdiff(a, b, 'stable')``: unique values of a not in b, in a's order."""
    drop = set(int(t) for t in np.asarray(b).ravel())
    out, seen = [], set()
    for t in np.asarray(a).ravel():
        t = int(t)
        if t in drop or t in seen:
            continue
        seen.add(t)
        out.append(t)
    return np.asarray(out, dtype=np.int64)


def x2p(xhw, stride, center):
    """x2p_.m: ``pHW = centerStart + (xHW - 1) .* Stride`` (1-based map position -> image pixel)."""
    return center + (np.asarray(xhw, dtype=np.float64) - 1) * stride


# ----------------------------------------------------------------------------------------
# getBasicSettings.m
# ----------------------------------------------------------------------------------------


def basic_settings(xh, deform, position_cand_num, map_delta_rate, max_range, deform_ratio):
    """getBasicSettings.m for one layer.

    ``deform``: the model's deform flattened column-major (``deform.reshape(-1, order='F')``).
    Returns ``(posCand [K, n], map_delta, halfRange [n])`` with ``K = min(position_cand_num, xh)``.
    """
    deform_delta = np.asarray(deform, dtype=np.float64).reshape(-1, order="F")  # deform_delta=deform_delta(:)
    xw = xh  # [xh,xw,~]=size(x); the release requires square maps
    pos_cand_num = int(min(position_cand_num, xh, xw))  # posCandNum=min([...,xh,xw])
    map_delta = map_delta_rate * xh  # map_delta=theConf.learn.map_delta*xh
    # halfRange=round(min(maxRange*xh/2, deform_delta.*deform_ratio)); MATLAB min ignores NaN
    half_range = matlab_round(np.fmin(max_range * xh / 2, deform_delta * deform_ratio))
    num = deform_delta.size
    pos_cand = np.zeros((pos_cand_num, num))
    for i in range(num):  # for i=1:num
        tmp = matlab_linspace(-half_range[i], half_range[i], pos_cand_num + 1)
        pos_cand[:, i] = (tmp[:-1] + tmp[1:]) / 2  # bin centres
    return pos_cand, float(map_delta), half_range


# ----------------------------------------------------------------------------------------
# doE.m + getProb_local_mex.cpp
# ----------------------------------------------------------------------------------------


def _get_gauss(dist: float, delta: float) -> float:
    # getGauss: exp(-sqr(dist)/(2*sqr(delta)))/(sqrt2pi*delta)
    return math.exp(-(dist * dist) / (2 * (delta * delta))) / (SQRT2PI * delta)


def _get_gauss_sqr(sqrdist: float, var1: float, var2: float) -> float:
    # getGauss_sqr: exp(-sqrdist/var1)/var2
    return math.exp(-sqrdist / var1) / var2


def _get_log_gauss_der(diff: float, delta: float) -> float:
    # getLogGaussDer: -diff/sqr(delta)
    return -diff / (delta * delta)


def _get_gauss_temp(half_range: float, pos_cand, pos_num: int, delta: float) -> list[list[float]]:
    """getGaussTemp: one smoothing template per candidate, ic = iw*posNum + ih."""
    hr = int(half_range)
    var1 = 2 * (delta * delta)
    var2 = SQRT2PI * delta
    too_far_sqr_dist = (delta * TOO_FAR) * (delta * TOO_FAR)
    too_small = math.exp(-(TOO_FAR * TOO_FAR) / 2.0) / var2
    gauss_temp = []
    for iw in range(pos_num):  # for(iw=0;iw<posNum;iw++)
        p_w = pos_cand[iw]
        for ih in range(pos_num):  # for(ih=0;ih<posNum;ih++)
            p_h = pos_cand[ih]
            temp = []  # jc runs over jw (outer) then jh (inner)
            for jw in range(-hr, hr + 1):
                sqrdist_tmp = (p_w - jw) * (p_w - jw)
                for jh in range(-hr, hr + 1):
                    sqrdist = sqrdist_tmp + (p_h - jh) * (p_h - jh)
                    if sqrdist < too_far_sqr_dist:
                        temp.append(_get_gauss_sqr(sqrdist, var1, var2))
                    else:
                        temp.append(too_small)
            gauss_temp.append(temp)
    return gauss_temp


def _get_response_map(x_ch, h: float, w: float, half_range: float, length: int) -> list[float]:
    """getResponseMap: window around the C-rounded (h, w), column (i = w) outer, row (j = h) inner."""
    h = _c_round(h)
    w = _c_round(w)
    hr = int(half_range)
    out = []
    for i in range(int(w) - hr, int(w) + hr + 1):
        for j in range(int(h) - hr, int(h) + hr + 1):
            if i < 0 or i >= length or j < 0 or j >= length:
                out.append(0.0)
            else:
                v = float(x_ch[j, i])  # x[i*len+j] of the column-major map = x(j+1, i+1)
                out.append(v if v > 0 else 0.0)  # C macro max(a,0): (a)>(0)?(a):(0)
    return out


def e_step(
    x,
    coord,
    deform,
    cur_mu,
    cur_delta,
    cur_lambda,
    *,
    position_cand_num=6,
    map_delta_rate=0.025,
    max_range=0.3,
    deform_ratio=3.0,
    release_indexing=True,
):
    """doE.m + getProb_local_mex.cpp for one image.

    x [xh, xh, C]; coord [2, P, C] (1-based row, col); deform [P, C] (model deform, used only for
    halfRange/posCand); cur_mu [2, P*C]; cur_delta [P*C]; cur_lambda [P*C].
    Returns dict(prob, prior [K*K, P*C], log_der, pos [2, K*K, P*C], pos_cand [K, P*C], half_range [P*C]).
    """
    x = np.asarray(x, dtype=np.float64)  # x=double(x)
    xh, xw, channel_num = x.shape
    if xh != xw:
        raise ValueError("Errors here.")
    coord = np.asarray(coord, dtype=np.float64)
    pattern_num = coord.shape[1]  # patternNum=size(coord,2)
    deform = np.asarray(deform, dtype=np.float64)

    # [posCand,map_delta,halfRange]=getBasicSettings(x,theConf,deform_delta,layerID)
    pos_cand, map_delta, half_range = basic_settings(
        xh, deform.reshape(-1, order="F"), position_cand_num, map_delta_rate, max_range, deform_ratio
    )
    pos_num = pos_cand.shape[0]
    pos_total = pos_num * pos_num

    # curMu=reshape(curMu,[2,patternNum,channelNum]); curDelta=reshape(curDelta,[patternNum,channelNum])
    cur_mu = np.asarray(cur_mu, dtype=np.float64).reshape(2, pattern_num, channel_num, order="F")
    cur_delta = np.asarray(cur_delta, dtype=np.float64).reshape(-1, order="F")  # the mex sees it flat
    cur_lambda = np.asarray(cur_lambda, dtype=np.float64).reshape(-1, order="F")
    coord = coord + cur_mu  # coord=coord+curMu

    # ---- getProb_local_mex(x,coord,posCand,halfRange,curDelta,map_delta,channelNum) ----
    n_nodes = pattern_num * channel_num
    prob = np.zeros((pos_total, n_nodes))
    prior = np.zeros((pos_total, n_nodes))
    log_der = np.zeros((2, pos_total, n_nodes))  # derLog rows: [der_h; der_w]
    pos = np.zeros((2, pos_total, n_nodes))  # pos rows: [pos_h; pos_w]
    for ch in range(channel_num):  # for(ch=0;ch<channelNum;ch++)
        for i in range(pattern_num):  # for(i=0;i<patNum;i++)
            node = ch * pattern_num + i
            # the mex indexes deform_delta[i], halfRange[i] (no channel offset); posCand uses ch*patNum+i
            par = i if release_indexing else node
            node_cand = pos_cand[:, node]  # posCand=oriPosCand+(ch*patNum+i)*posNum
            hr = half_range[par]
            sigma = cur_delta[par]
            pixel_num = int((hr * 2 + 1) * (hr * 2 + 1))  # pixelNum=sqr(halfRange[i]*2+1)
            gauss_temp = _get_gauss_temp(hr, node_cand, pos_num, map_delta)
            h = coord[0, i, ch] - 1  # h=coord[i*2+coord_bias]-1
            w = coord[1, i, ch] - 1  # w=coord[i*2+1+coord_bias]-1
            resp = _get_response_map(x[:, :, ch], h, w, hr, xh)
            j = 0
            for p1 in range(pos_num):  # column (w) offset
                deform1 = _get_gauss(node_cand[p1], sigma)
                der_w = _get_log_gauss_der(-node_cand[p1], sigma)
                pos_w = w + 1 + node_cand[p1]
                for p2 in range(pos_num):  # row (h) offset
                    deform2 = _get_gauss(node_cand[p2], sigma)
                    der_h = _get_log_gauss_der(-node_cand[p2], sigma)
                    pos_h = h + 1 + node_cand[p2]
                    s = 0.0
                    for k in range(pixel_num):  # sum+=GaussTemp[j][k]*map[k]
                        s += gauss_temp[j][k] * resp[k]
                    prob[j, node] = deform1 * deform2
                    prior[j, node] = s
                    log_der[0, j, node] = der_h
                    log_der[1, j, node] = der_w
                    pos[0, j, node] = pos_h
                    pos[1, j, node] = pos_w
                    j += 1

    # prob=reshape(prob,[posCandNum^2,patternNum*channelNum]).*repmat(curLambda',[posCandNum^2,1])
    prob = prob * cur_lambda[None, :]
    return dict(prob=prob, prior=prior, log_der=log_der, pos=pos, pos_cand=pos_cand, half_range=half_range)


# ----------------------------------------------------------------------------------------
# getOtherProb.cpp + the parfor body of learn_explanatoryGraph.m
# ----------------------------------------------------------------------------------------


def _get_prob(ht: float, wt: float, pos_p, prob_p, c_num: int) -> float:
    """getOtherProb.cpp getProb: prob of node p at its candidate nearest to (ht, wt); 0 outside its box."""
    # box from the first candidate (pos[0], pos[1]) and the last one (pos[cNum*2-2], pos[cNum*2-1])
    if ht < pos_p[0, 0] or wt < pos_p[1, 0] or ht > pos_p[0, c_num - 1] or wt > pos_p[1, c_num - 1]:
        return 0.0
    min_dist = 100000000.0
    result = np.nan  # uninitialised in C; only reachable if every distance is >= 1e8
    for c in range(c_num):
        dh = ht - pos_p[0, c]
        dw = wt - pos_p[1, c]
        tmp = dh * dh + dw * dw
        if tmp < min_dist:  # strict: the first candidate wins ties
            min_dist = tmp
            result = prob_p[c]
    return float(result)


def _get_other_prob(prob, pos, c_num: int, p_num: int) -> np.ndarray:
    """getOtherProb(prob(:,list),pos(:,:,list),posCandNum^2,patternNum,1): result [pNum, cNum*pNum]."""
    result = np.zeros((p_num, c_num * p_num))
    for pt in range(p_num):  # for(pt=0;pt<pNum;pt++)  (chNum == 1)
        for ct in range(c_num):  # for(ct=0;ct<cNum;ct++)
            ct_bias = ct + c_num * pt
            ht = pos[0, ct, pt]
            wt = pos[1, ct, pt]
            for p in range(p_num):  # for(p=0;p<pNum;p++)
                result[p, ct_bias] = _get_prob(ht, wt, pos[:, :, p], prob[:, p], c_num)
    return result


def image_update(prob, prior, log_der, pos, num_patterns, num_channels, *, valid_tau=0.1):
    """The body of ``parfor imgID`` in learn_explanatoryGraph.m for one image (after doFlipConfigureation)."""
    prob = np.asarray(prob, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    log_der = np.asarray(log_der, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    # if(mean(isnan(prob(:)))>0)||... error('Here')
    if np.isnan(prob).any() or np.isnan(prior).any() or np.isnan(log_der).any() or np.isnan(pos).any():
        raise FloatingPointError("Here")

    pos_total = prob.shape[0]
    pos_num = int(round(math.sqrt(pos_total)))  # parPosCandNum
    pattern_num = int(num_patterns)
    channel_num = int(num_channels)
    n_nodes = pattern_num * channel_num

    # sumProb: for ch=1:parChannelNum ... otherProb=getOtherProb(...); sum(otherProb,1)
    sum_prob = np.zeros(prob.shape)
    for ch in range(channel_num):
        cols = np.arange(ch * pattern_num, (ch + 1) * pattern_num)  # list=(ch-1)*parPatternNum+(1:parPatternNum)
        other_prob = _get_other_prob(prob[:, cols], pos[:, :, cols], pos_total, pattern_num)
        # otherProb=reshape(otherProb,[parPatternNum,parPosCandNum^2,parPatternNum]) -> (p, ct, pt)
        other_prob = other_prob.reshape(pattern_num, pos_total, pattern_num, order="F")
        sum_prob[:, cols] = np.sum(other_prob, axis=0)  # reshape(sum(otherProb,1),[K^2,P])
    other = sum_prob.copy()

    # tau=validTau.*mean(sum(prob,1),2); sumProb=sumProb+tau
    tau = valid_tau * np.mean(np.sum(prob, axis=0))
    sum_prob = sum_prob + tau
    norm_prob = prob / np.fmax(sum_prob, 0.0000001)  # normProb=prob./max(sumProb,0.0000001)
    final_prob = norm_prob * prior  # finalProb=normProb.*prior
    norm_prob_sum = np.sum(final_prob, axis=0)  # totalNormProb(:,imgID)=sum(finalProb,1)'
    # delta=sum(repmat(reshape(finalProb,[1,size(finalProb)]),[2,1,1]).*logDer,2)
    delta = np.sum(final_prob[None, :, :] * log_der, axis=1)  # totalLogDer(:,:,imgID) [2, P*C]
    prob_sum = np.sum(prob * prior, axis=0)  # totalProb(:,imgID)=sum(prob.*prior,1)'

    # tmp=1:K; tmp=(tmp-mean(tmp)).^2; tmp=repmat(tmp,[K,1]); tmp=tmp+tmp'; reshape to [K^2,1]
    t = np.arange(1, pos_num + 1, dtype=np.float64)
    t = (t - np.mean(t)) ** 2
    grid = np.tile(t, (pos_num, 1))  # grid[r, c] = t[c]
    grid = grid + grid.T
    weight = grid.reshape(pos_total, order="F")
    pos_var = np.sum(prob * prior * weight[:, None], axis=0)  # totalPosVar(:,imgID)

    # [~,idx]=max(prob.*prior,[],1): first max per node (NaN ignored)
    pp = prob * prior
    best = np.zeros(n_nodes, dtype=np.int64)
    for node in range(n_nodes):
        _, best[node] = _first_max(pp[:, node])
    # idx=idx+(0:P*C-1).*(K^2); totalPos(:,:,imgID)=pos(:,idx); inferredProb=prob(idx).*prior(idx)
    nodes = np.arange(n_nodes)
    position = pos[:, best, nodes]
    inferred = prob[best, nodes] * prior[best, nodes]

    return dict(
        norm_prob_sum=norm_prob_sum,
        prob_sum=prob_sum,
        log_der=delta,
        pos_var=pos_var,
        best=best,
        position=position,
        inferred=inferred,
        other=other,
    )


# ----------------------------------------------------------------------------------------
# updateModel (learn_explanatoryGraph.m)
# ----------------------------------------------------------------------------------------


def m_step(
    total_prob,
    total_norm_prob,
    total_log_der,
    total_pos_var,
    total_pos,
    coord,
    pos_cand,
    *,
    xh,
    eta=1.0,
    min_delta,
    max_delta_rate,
    min_delta_rate,
):
    """updateModel: new coord [2, P, C], deform [P, C] (release: column [P*C, 1]), prob_record [P*C, N]."""
    total_prob = np.asarray(total_prob, dtype=np.float64)
    total_norm_prob = np.asarray(total_norm_prob, dtype=np.float64)
    total_log_der = np.asarray(total_log_der, dtype=np.float64)
    total_pos_var = np.asarray(total_pos_var, dtype=np.float64)
    coord = np.asarray(coord, dtype=np.float64)
    pos_cand = np.asarray(pos_cand, dtype=np.float64)
    _, pattern_num, channel_num = coord.shape

    with np.errstate(invalid="ignore", divide="ignore"):
        # layer.coord=coord+reshape(sum(totalLogDer,3)./repmat(max(sum(totalNormProb,2),1e-8)',[2,1]),size(coord))
        #             .*(eta*(minDelta^2))
        denom = np.fmax(np.sum(total_norm_prob, axis=1), 0.00000001)
        step = np.sum(total_log_der, axis=2) / denom[None, :]
        new_coord = coord + step.reshape(2, pattern_num, channel_num, order="F") * (eta * (min_delta**2))

        unit = pos_cand[1, :] - pos_cand[0, :]  # unit=(posCand(2,:)-posCand(1,:))'
        # layer.deform=sqrt(sum(totalPosVar,2)./sum(totalProb,2)).*unit
        deform = np.sqrt(np.sum(total_pos_var, axis=1) / np.sum(total_prob, axis=1)) * unit
    max_deform = max_delta_rate * xh  # conf.learn.deform_.max_delta(layerID)*xh
    min_deform = min_delta_rate * xh  # conf.learn.deform_.min_delta(layerID)*xh
    deform = np.fmin(np.fmax(deform, min_deform), max_deform)  # min(max(.,minDeform),maxDeform)

    norma = np.mean(np.mean(total_prob, axis=1), axis=0)  # norma=mean(mean(totalProb,2),1)
    prob_record = total_prob / norma
    return dict(
        coord=new_coord,
        deform=deform.reshape(pattern_num, channel_num, order="F"),
        prob_record=prob_record,
        pos_record=np.array(total_pos, dtype=np.float64),
    )


# ----------------------------------------------------------------------------------------
# getCurDistribution.m
# ----------------------------------------------------------------------------------------


def first_iteration(num_nodes, num_images, xh, init_delta=0.15):
    """getCurDistribution.m, ``valid == false`` branch (top layer, or iter == 1)."""
    cur_mu = np.zeros((2, num_nodes, num_images))
    tmp = xh * init_delta  # tmp=xh*theConf.learn.deform_.init_delta
    cur_delta = np.ones((num_nodes, num_images)) * tmp
    cur_lambda = np.ones((num_nodes, num_images))
    return dict(
        parents=np.zeros((0, num_nodes), dtype=np.int64),  # totalIdx=[]
        cur_mu=cur_mu,
        cur_delta=cur_delta,
        cur_lambda=cur_lambda,
    )


def parents(
    total_pos_pre,
    upper_deform,
    upper_prob_record,
    total_pos,
    inferred_prob,
    *,
    xh,
    num_patterns,
    num_channels,
    top_n,
    top_m,
    upper_stride,
    upper_center,
    stride,
    center,
):
    """getCurDistribution.m, ``valid == true`` branch.

    total_pos_pre [2, Mu, N] (upper layer's totalPos), upper_deform (Mu values, any shape, read
    column-major), upper_prob_record [Mu, N], total_pos [2, P*C, N], inferred_prob [P*C, N].
    Returns dict(parents [top_n, P*C] (0-based totalIdx), cur_mu [2, P*C, N], cur_delta, cur_lambda [P*C, N]).
    """
    total_pos_pre = np.asarray(total_pos_pre, dtype=np.float64)
    total_pos = np.asarray(total_pos, dtype=np.float64)
    upper_prob_record = np.asarray(upper_prob_record, dtype=np.float64)
    inferred_prob = np.asarray(inferred_prob, dtype=np.float64)
    pattern_num = int(num_patterns)
    channel_num = int(num_channels)
    n_nodes = pattern_num * channel_num
    img_num = total_pos.shape[2]  # imgNum=size(totalPos,3)

    tmp_pre = total_pos_pre - np.mean(total_pos_pre, axis=2, keepdims=True)
    tmp = total_pos - np.mean(total_pos, axis=2, keepdims=True)
    upper_delta = np.asarray(upper_deform, dtype=np.float64).reshape(-1, order="F")  # model.layer(L+1).deform
    top_m = int(top_m)
    top_n = int(top_n)

    # [~,tmp1]=sort(var(tmp_pre(1,:,:),[],3)+var(tmp_pre(2,:,:),[],3),'ascend'); keep the first ceil(M*0.5)
    tmp1 = _sort_ascend(_matlab_var(tmp_pre[0], axis=1) + _matlab_var(tmp_pre[1], axis=1))
    tmp1 = tmp1[: int(math.ceil(tmp1.size * MIN_VAR_RATE))]
    # tmp2=find(min(xh/2-abs(xh/2-mean(totalPos_pre,3)),[],1)<xh*edgeCutRate)  (current layer's xh)
    mean_pre = np.mean(total_pos_pre, axis=2)
    edge = xh / 2 - np.abs(xh / 2 - mean_pre)
    tmp2 = np.nonzero(np.fmin(edge[0], edge[1]) < xh * EDGE_CUT_RATE)[0]
    # [~,candIdx]=sort(sum(model.layer(layerID+1).prob_record,2),'descend'); setdiff(...,'stable') twice
    cand_idx = _sort_descend(np.sum(upper_prob_record, axis=1))
    cand_idx = _setdiff_stable(cand_idx, tmp1)
    cand_idx = _setdiff_stable(cand_idx, tmp2)
    if cand_idx.size < top_m:  # candIdx(1:topM) is an index error in MATLAB
        raise ValueError(f"only {cand_idx.size} candidate parents survive, topM={top_m}")
    cand_idx = cand_idx[:top_m]

    tmp_pre = tmp_pre[:, cand_idx, :]  # [2, topM, N]
    upper_delta = upper_delta[cand_idx]
    idx = np.ones((top_n, pattern_num, channel_num), dtype=np.int64)  # 1-based into candIdx, as the release
    hw_pre = x2p(tmp_pre, upper_stride, upper_center)  # x2p_(tmp_pre,layerID+1,theConf)
    hw = x2p(tmp.reshape(2, pattern_num, channel_num, img_num, order="F"), stride, center)
    infer_p = inferred_prob.reshape(pattern_num, channel_num, img_num, order="F")

    for ch in range(channel_num):  # parfor ch=1:channelNum
        the_hw = hw[:, :, ch, :]  # [2, pNum, imgN]
        par_m = hw_pre.shape[1]
        tmp_idx = np.zeros((top_n, pattern_num), dtype=np.int64)
        the_prob = infer_p[:, ch, :]  # [pNum, imgN]
        for p in range(pattern_num):  # for p=1:pNum
            h_row = the_hw[0, p, :]
            w_row = the_hw[1, p, :]
            tmp_p = np.tile(the_prob[p, :], (par_m, 1))  # repmat(theProb(p,:),[parM,1])
            sqrd = (np.tile(h_row, (par_m, 1)) - hw_pre[0]) ** 2
            sqrd = sqrd + (np.tile(w_row, (par_m, 1)) - hw_pre[1]) ** 2
            # probSum=-sum(exp(-sqrd./(2*mean(sqrd(:)))).*tmpP,2); [~,tmp]=sort(probSum,'ascend')
            prob_sum = -np.sum(np.exp(-sqrd / (2 * np.mean(sqrd))) * tmp_p, axis=1)
            order = _sort_ascend(prob_sum)
            tmp_idx[:, p] = order[:top_n] + 1  # tmpIdx(:,p)=tmp(1:parN)
        idx[:, :, ch] = tmp_idx
    idx = idx.reshape(top_n, n_nodes, order="F")

    infer_poster = (1 / top_n) * np.ones((top_n, n_nodes, img_num))
    cur_mu = np.zeros((2, n_nodes, img_num))
    sum_weight = np.zeros((n_nodes, img_num))
    for i in range(top_n):  # for i=1:topN
        lst = idx[i, :] - 1  # 0-based into candIdx
        # w=reshape(infer_poster(i,:,:),[P*C,imgNum])./repmat((upper_delta(list).^2),[1,imgNum])
        w = infer_poster[i] / np.tile((upper_delta[lst] ** 2)[:, None], (1, img_num))
        sum_weight = sum_weight + w
        # tmp_pre(list.*2-1) / tmp_pre(list.*2): rows 1 / 2 of tmp_pre at (idx(i,node), image)
        cur_mu[0] = cur_mu[0] + tmp_pre[0, lst, :] * w
        cur_mu[1] = cur_mu[1] + tmp_pre[1, lst, :] * w
    total_idx = cand_idx[idx - 1]  # totalIdx=candIdx(idx), here 0-based upper-layer node indices
    cur_delta = np.sqrt(1 / sum_weight)  # curDelta=sqrt(1./sumWeight)
    cur_mu = cur_mu / sum_weight[None, :, :]
    cur_lambda = np.ones((n_nodes, img_num))
    for i in range(top_n):
        lst = idx[i, :] - 1
        updelta = np.tile(upper_delta[lst][:, None], (1, img_num))
        t = (cur_mu[0] - tmp_pre[0, lst, :]) ** 2
        t = t + (cur_mu[1] - tmp_pre[1, lst, :]) ** 2
        # curLambda=curLambda.*exp(-tmp./((2*topN).*(updelta.^2)))./updelta
        cur_lambda = cur_lambda * np.exp(-t / ((2 * top_n) * (updelta**2))) / updelta
    cur_lambda = cur_lambda * cur_delta  # curLambda=curLambda.*curDelta

    return dict(parents=total_idx, cur_mu=cur_mu, cur_delta=cur_delta, cur_lambda=cur_lambda)


# ----------------------------------------------------------------------------------------
# doFlipConfigureation.m
# ----------------------------------------------------------------------------------------


def flip_choice(prob, prior, prob_flip, prior_flip) -> bool:
    """doFlipConfigureation: True when the flipped image is chosen.

    ``if(sum(log(prob(:)).*prior(:))<sum(log(prob_flip(:)).*prior_flip(:)))`` -> flipped.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.sum(np.log(np.asarray(prob, np.float64).reshape(-1, order="F")) * np.reshape(prior, -1, order="F"))
        b = np.sum(
            np.log(np.asarray(prob_flip, np.float64).reshape(-1, order="F")) * np.reshape(prior_flip, -1, order="F")
        )
    return bool(a < b)


# ----------------------------------------------------------------------------------------
# getDistSqrtVar.m and computeStability_raw.m
# ----------------------------------------------------------------------------------------


def _get_diff(pos, truth, img_id: int) -> np.ndarray:
    """getDiff: truth centre minus pattern position, or invalidNum where the part is absent."""
    part_num = len(truth)
    pat_num = pos.shape[1]
    diff = np.zeros((2, part_num, pat_num))
    for i in range(part_num):
        centre = np.asarray(truth[i], dtype=np.float64)[img_id]  # pHW_center ([] -> NaN row here)
        if np.isnan(centre).any():  # isempty(pos_truth)
            diff[:, i, :] = INVALID_NUM
        else:
            diff[:, i, :] = centre[:, None] - pos  # pos_truth-pos
    return diff


def _get_avg_dist_sqrt_var(diff, prob, patch_num_per_pattern: int) -> np.ndarray:
    """getAvgDistSqrtVar."""
    _, part_num, pat_num, _ = diff.shape
    dist_sqrt_var = np.zeros(pat_num)
    for pat in range(pat_num):
        order = _sort_descend(prob[pat, :])  # [~,list]=sort(prob(pat,:),'descend')
        if order.size < patch_num_per_pattern:
            raise ValueError("list(1:patchNumPerPattern) exceeds the number of images")
        lst = order[:patch_num_per_pattern]
        for part in range(part_num):
            invalid = np.nonzero(diff[0, part, pat, :] == INVALID_NUM)[0]  # first coordinate only
            keep = _setdiff_stable(lst, invalid)
            sub = diff[:, part, pat, keep]
            dist = np.sqrt(np.sum(sub**2, axis=0))  # sqrt(sum(diff.^2,1))
            dist_sqrt_var[pat] = dist_sqrt_var[pat] + math.sqrt(float(_matlab_var(dist)))
        dist_sqrt_var[pat] = dist_sqrt_var[pat] / part_num
    return dist_sqrt_var


def dist_sqrt_var(pos, prob, patch_num_per_pattern, truth):
    """getDistSqrtVar (after loading the truth).

    pos [2, patNum, imgNum] in image pixels; prob [patNum, imgNum]; truth: list over parts of
    [imgNum, 2] arrays of (h, w) part centres, NaN rows where the part is absent.  Returns [patNum].
    """
    pos = np.asarray(pos, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    _, pat_num, img_num = pos.shape
    part_num = len(truth)
    diff = np.zeros((2, part_num, pat_num, img_num))
    for img_id in range(img_num):
        diff[:, :, :, img_id] = _get_diff(pos[:, :, img_id], truth, img_id)
    return _get_avg_dist_sqrt_var(diff, prob, int(patch_num_per_pattern))


def raw_filter_peaks(x_maps, stride, center):
    """computeStability_raw.m per layer: each filter's peak position (image pixels) and value.

    x_maps: a sequence over images of [xh, xh, C] maps (a stacked [N, xh, xh, C] array works).
    Returns (pos [2, C, N], score [C, N]).
    """
    maps = [np.asarray(x, dtype=np.float64) for x in x_maps]
    img_num = len(maps)
    pat_num = maps[0].shape[2]
    pos = np.zeros((2, pat_num, img_num))
    score = np.zeros((pat_num, img_num))
    for img_id, x in enumerate(maps):
        xw = x.shape[1]
        for c in range(pat_num):
            # [v,idx]=max(x,[],1): per column, the first max over rows
            col_val = np.zeros(xw)
            col_arg = np.zeros(xw, dtype=np.int64)
            for w in range(xw):
                col_val[w], col_arg[w] = _first_max(x[:, w, c])
            # [v,tmp]=max(v,[],2): the first column holding the max
            v, best_w = _first_max(col_val)
            idx_h = col_arg[best_w] + 1  # idx_h=idx(tmp+(0:patNum-1).*xh), 1-based
            idx_w = best_w + 1
            pos[:, c, img_id] = x2p(np.array([idx_h, idx_w]), stride, center)  # x2p_([idx_h;idx_w],...)
            score[c, img_id] = v
    return pos, score
