package kernels

// docs holds what each kernel computes and how it is launched, keyed by
// kernel name: Kernel.Doc of the generated table (table_gen.go). A kernel
// without a doc, or a doc for no kernel, fails TestDocs.
var docs = map[string]string{
	"conv2d_fwd_v1_direct": "y[n,k,p,q] = b[k] + Σ_c Σ_r Σ_s w[k,c,r,s]·x[n,c,p·sh−ph+r,q·sw−pw+s] (zero padding; " +
		"sum from 0 over c,r,s ascending, b[k] added last; b may be null). 1-D over N·K·P·Q.",
	"conv2d_bwd_data_v1_direct": "dx[n,c,h,v] = Σ_k Σ_r Σ_s w[k,c,r,s]·dy[n,k,(h+ph−r)/sh,(v+pw−s)/sw] over exact, " +
		"in-range divisions (gather, sum from 0 over k,r,s ascending). 1-D over N·C·H·W.",
	"conv2d_bwd_filter_v1_direct": "dw[k,c,r,s] = Σ_n Σ_p Σ_q dy[n,k,p,q]·x[n,c,p·sh−ph+r,q·sw−pw+s]; one block per dw " +
		"element, thread t sums terms t, t+256, … then a fixed shared-memory tree. " +
		"grid.x = K·C·R·S, block.x = 256.",
	"conv2d_bwd_bias_v1": "db[k] = Σ_n Σ_pq dy[n,k,pq]; one block per k, strided per-thread sums then a fixed " +
		"shared-memory tree. grid.x = K, block.x = 256.",
	"conv2d_fwd_v2_igemm": "y = act(b[k] + Σ_c,r,s w[k,c,r,s]·x[n,c,p·sh−ph+r,q·sw−pw+s]) as an FP32 implicit GEMM " +
		"(M = N·P·Q, N = K, K = C·R·S; 128×64×8 tiles, FFMA chain from 0, b[k] added last; b may " +
		"be null; act = ReLU when relu ≠ 0). grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.",
	"conv2d_bwd_data_v2_igemm": "dx as conv2d_bwd_data_v1_direct, as an FP32 implicit GEMM (M = N·H·W, N = C, " +
		"K = K·R·S). grid = (⌈N·H·W/128⌉, ⌈C/64⌉), block.x = 256.",
	"conv2d_bwd_filter_v2_igemm": "split z of dw: ws[z,k,c,r,s] = Σ over j = (n·P+p)·Q+q in [8·tilesPerSplit·z, " +
		"8·tilesPerSplit·(z+1)) of dy·x, an FP32 implicit GEMM (M = C·R·S, N = K, K = N·P·Q). " +
		"grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256.",
	"conv2d_bwd_filter_v2_reduce": "dw[i] = Σ_z ws[z·n+i], z ascending from ws[i] (fixed order). 1-D over n.",
	"conv2d_bwd_data_v4_igemm_strided": "dx as conv2d_bwd_data_v2_igemm, decomposed by stride phase (one dense FP32 GEMM per " +
		"(h mod sh, w mod sw): M = N·⌈H/sh⌉·⌈W/sw⌉, N = C, K = K·⌈R/sh⌉·⌈S/sw⌉ at most; no zero terms). " +
		"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.",
	"conv2d_fwd_v6_igemm_wide": "conv2d_fwd_v2_igemm (same bits) with 128×128×8 tiles, 8×8 outputs per thread. " +
		"grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 256.",
	"conv2d_bwd_data_v6_igemm_wide": "conv2d_bwd_data_v2_igemm (same bits) with 128×128×8 tiles. " +
		"grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 256.",
	"conv2d_bwd_data_v6_igemm_wide_strided": "conv2d_bwd_data_v4_igemm_strided (same bits) with 128×128×8 tiles. " +
		"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/128⌉, sh·sw), block.x = 256.",
	"conv2d_bwd_filter_v6_igemm_wide": "conv2d_bwd_filter_v2_igemm (same splits, same bits) with 128×128×8 tiles. " +
		"grid = (⌈C·R·S/128⌉, ⌈K/128⌉, splits), block.x = 256.",
	"conv2d_fwd_v3_igemm_tf32": "conv2d_fwd_v2_igemm on TF32 tensor cores (mma.sync m16n8k8; operands rounded to TF32 " +
		"with cvt.rna, float32 accumulation). grid = (⌈N·P·Q/128⌉, ⌈K/64⌉), block.x = 256.",
	"conv2d_bwd_data_v3_igemm_tf32": "conv2d_bwd_data_v2_igemm on TF32 tensor cores. grid = (⌈N·H·W/128⌉, ⌈C/64⌉), " +
		"block.x = 256.",
	"conv2d_bwd_filter_v3_igemm_tf32": "conv2d_bwd_filter_v2_igemm on TF32 tensor cores (same splits; the second pass is " +
		"conv2d_bwd_filter_v2_reduce). grid = (⌈C·R·S/128⌉, ⌈K/64⌉, splits), block.x = 256.",
	"conv2d_bwd_data_v5_igemm_strided_tf32": "conv2d_bwd_data_v4_igemm_strided on TF32 tensor cores. " +
		"grid = (⌈N·⌈H/sh⌉·⌈W/sw⌉/128⌉, ⌈C/64⌉, sh·sw), block.x = 256.",
	"pack_nhwc_bf16_v1": "xh[n,hw,c] = bf16(x[n,c,hw]) (cvt.rn: to nearest, ties to even) for c < C, 0 for " +
		"C ≤ c < Cp: x (N,C,HW) float32 to channels-last bfloat16 with the channels padded to Cp (even; " +
		"a multiple of 8 for conv2d_fwd_v7_igemm_bf16), also w (K,C,R,S) to (K,R,S,Cp). " +
		"1-D over N·HW·Cp/2 (two channels per thread).",
	"conv2d_fwd_v7_igemm_bf16": "y = act(b[k] + Σ_r,s,c wh[k,r,s,c]·xh[n,p·sh−ph+r,q·sw−pw+s,c]) on BF16 tensor " +
		"cores (mma.sync m16n8k16, float32 accumulation) over the channels-last bfloat16 copies from " +
		"pack_nhwc_bf16_v1 (M = N·P·Q, N = K, K = R·S·Cp); 128×128×32 tiles, 4 warps of 64×64, 3-stage " +
		"cp.async pipeline of 16-byte copies (zero-fill for padding), ldmatrix.x4 from XOR-swizzled shared " +
		"tiles; b may be null, act = ReLU when relu ≠ 0. grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 128.",
	"pack_nhwc_tf32_v1": "xh[n,hw,c] = tf32(x[n,c,hw]) (cvt.rna: to nearest, ties away from zero) for c < C, 0 for " +
		"C ≤ c < Cp: x (N,C,HW) float32 to channels-last TF32 words with the channels padded to Cp (a multiple " +
		"of 4 for conv2d_fwd_v8_igemm_tf32), also w (K,C,R,S) to (K,R,S,Cp). 1-D over N·HW·Cp.",
	"conv2d_fwd_v8_igemm_tf32": "conv2d_fwd_v3_igemm_tf32's result on the pipeline of conv2d_fwd_v7_igemm_bf16: " +
		"mma.sync m16n8k8 .tf32 over the channels-last TF32 copies from pack_nhwc_tf32_v1 (M = N·P·Q, N = K, " +
		"K = R·S·Cp); 128×128×16 tiles, 4 warps of 64×64, 3-stage cp.async pipeline of 16-byte copies, " +
		"ldmatrix.x4 from XOR-swizzled shared tiles; b may be null, act = ReLU when relu ≠ 0. " +
		"grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 128.",
	"pack_crsk_flip_bf16_v1": "wt[c,r,s,k] = bf16(w[k,c,R−1−r,S−1−s]) (cvt.rn.bf16x2: to nearest, ties to even) for " +
		"k < K, 0 for K ≤ k < Kp: the filters of conv2d_bwd_data_v9_igemm_bf16, transposed to (C,R,S,Kp) with " +
		"the taps flipped, K padded to a multiple of 8. 1-D over C·R·S·Kp/2 (two filters a thread).",
	"pack_crsk_flip_tf32_v1": "wt[c,r,s,k] = tf32(w[k,c,R−1−r,S−1−s]) (cvt.rna) for k < K, 0 for K ≤ k < Kp: the " +
		"filters of conv2d_bwd_data_v9_igemm_tf32, transposed to (C,R,S,Kp) with the taps flipped, K padded to " +
		"a multiple of 4. 1-D over C·R·S·Kp.",
	"pack_transpose_bf16_v2": "dst[b, rv(j), i] = bf16(src[b, i, j]) for i < rows, 0 for rows ≤ i < rowsP (rv reverses " +
		"j within groups of rev): the coalesced packing of x to channels-last (B = N, rows = C, cols = H·W) and of w " +
		"to (C,R,S,Kp) with flipped taps (B = 1, rows = K, cols = C·R·S, rev = R·S) through 32×32 shared tiles. " +
		"grid = (⌈cols/32⌉, ⌈rowsP/32⌉, B), block = (32, 8).",
	"pack_transpose_tf32_v2": "pack_transpose_bf16_v2 to TF32 words (cvt.rna). grid = (⌈cols/32⌉, ⌈rowsP/32⌉, B), " +
		"block = (32, 8).",
	"pack_transpose_f32_v2": "pack_transpose_bf16_v2 for float32 as it is (the FP32 pipeline's operands). " +
		"grid = (⌈cols/32⌉, ⌈rowsP/32⌉, B), block = (32, 8).",
	"conv2d_bwd_data_v11_igemm_pipe": "dx = Σ dy·w as exact float32 FFMA chains over k = (r, s, kf) ascending " +
		"(flipped taps): conv2d_bwd_data_v9's loader and pipeline on float32 dyh and wt from pack_transpose_f32_v2, " +
		"Kp a multiple of 16, 256 threads of 8×8 outputs reading float4 from an XOR-swizzled dy tile and a " +
		"broadcast filter tile; any stride; not dispatched " +
		"(its order differs from v2/v4/v6). grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 256.",
	"conv2d_fwd_v12_igemm_pipe": "y = act(b + Σ x·w) as exact float32 FFMA chains over k = (r, s, c) ascending, the " +
		"bias added last: conv2d_fwd_v8's pipeline (3-stage cp.async, 128×128×16 tiles) on float32 xh (N,H,W,Cp) and " +
		"wh (K,R,S,Cp) from pack_transpose_f32_v2, Cp a multiple of 16, 256 threads of 8×8 outputs reading float4 " +
		"from an XOR-swizzled pixel tile and a broadcast filter tile; not dispatched (its order differs from v2/v6). " +
		"grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 256.",
	"conv2d_bwd_filter_v13_igemm_pipe": "split z of dw = Σ_j dy·x as exact float32 FFMA chains over j = (n, p, q) " +
		"ascending: an implicit GEMM over the batch (M = K, N = R·S·Cp, K = N·P·Q in 16-row k-tiles, tilesPerSplit " +
		"a split) on float32 dyh and xh from pack_transpose_f32_v2 (Kp, Cp multiples of 16), 3-stage cp.async, " +
		"256 threads of 8×8 outputs reading two float4 of each k-major tile a row; one split writes dw (KCRS), " +
		"several write channels-last partial sums ws[z] (K,R,S,Cp) in 16-byte stores, which " +
		"conv2d_bwd_filter_v13_reduce adds in order; not dispatched (its order differs from v2/v6). " +
		"grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 256.",
	"conv2d_bwd_filter_v13_reduce": "dw[k,c,r,s] = Σ_z ws[z,k,r,s,c], z ascending from ws[0] (fixed order, as " +
		"conv2d_bwd_filter_v2_reduce), c < C: conv2d_bwd_filter_v13_igemm_pipe's channels-last split partial sums " +
		"into KCRS, one weight a thread in (k,r,s,c) order (coalesced reads). 1-D over K·R·S·C.",
	"conv2d_bwd_data_v9_igemm_bf16": "dx = Σ_k Σ_r Σ_s bf16(dy)·bf16(w) over the taps that divide the stride, float32 " +
		"sums: an implicit GEMM over dyh (N,P,Q,Kp) from pack_nhwc_bf16_v1 and wt from pack_crsk_flip_bf16_v1 " +
		"(M = N·H·W, N = C, K = R·S·Kp) on the v7 pipeline (128×128×32 tiles, 3-stage cp.async, ldmatrix.x4, " +
		"mma m16n8k16); the loader zero-fills the taps a stride skips. grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 128.",
	"conv2d_bwd_data_v9_igemm_tf32": "conv2d_bwd_data_v9_igemm_bf16 with TF32 operands (pack_nhwc_tf32_v1, " +
		"pack_crsk_flip_tf32_v1; mma m16n8k8 .tf32, 128×128×16 tiles). grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 128.",
	"conv2d_bwd_filter_v10_igemm_bf16": "split z of dw = Σ_j bf16(dy)·bf16(x), float32 sums: an implicit GEMM over " +
		"the batch (M = K, N = R·S·Cp, K = N·P·Q in 32-row k-tiles, tilesPerSplit of them per split) on dyh and " +
		"xh from pack_nhwc_bf16_v1, k-major swizzled tiles read by ldmatrix.x4.trans, mma m16n8k16; writes " +
		"ws[z] (KCRS; dw itself with one split, else conv2d_bwd_filter_v2_reduce adds the splits in order). " +
		"grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 128.",
	"conv2d_bwd_filter_v10_igemm_tf32": "conv2d_bwd_filter_v10_igemm_bf16 with TF32 operands (pack_nhwc_tf32_v1; " +
		"16-row k-tiles; fragments by 64-bit (A) and 32-bit (B) shared loads, mma m16n8k8 .tf32). " +
		"grid = (⌈K/128⌉, ⌈R·S·Cp/128⌉, splits), block.x = 128.",
	"relu_fwd_v1":        "y = x > 0 ? x : 0, NaN propagates. 1-D over n.",
	"relu_bwd_v1":        "dx = x > 0 ? dy : 0 (x the forward input). 1-D over n.",
	"relu_bwd_bf16dy_v1": "relu_bwd_v1 with dy (n) bfloat16, widened exactly as it is read (dx float32). 1-D over n.",
	"maxpool_fwd_v1": "y = first maximum of each R×S window in row-major order (strict >, a NaN wins); " +
		"argmax = its flat index into x (int32). 1-D over N·C·P·Q.",
	"maxpool_bwd_v1": "dx[i] = Σ dy over the windows (p,q ascending) containing i whose argmax == i " +
		"(gather, no atomics). 1-D over N·C·H·W.",
	"dense_fwd_v1": "y[n,o] = b[o] + Σ_i x[n,i]·w[o,i], w is (Out,In); sum from 0 over i ascending, " +
		"b[o] added last; b may be null. 1-D over N·Out.",
	"dense_bwd_data_v1":   "dx[n,i] = Σ_o dy[n,o]·w[o,i] (o ascending). 1-D over N·In.",
	"dense_bwd_weight_v1": "dw[o,i] = Σ_n dy[n,o]·x[n,i] (n ascending). 1-D over Out·In.",
	"reduce_cols_v1":      "out[j] = Σ_i a[i,j] (i ascending; the dense bias gradient). 1-D over cols.",
	"softmax_ce_v1": "per row: stable log-softmax; loss_rows[n] = −log softmax[label]; dlogits[n,:] = " +
		"(softmax − onehot)/N (dlogits may be null); a label outside [0,classes) gives a NaN " +
		"loss and a NaN dlogits row. 1-D over N.",
	"mse_v1": "loss_rows[n] = ½ Σ_d (t−y)²; dy = (y−t)/N (dy may be null). 1-D over N.",
	"reduce_sum_v1": "out[0] = scale·Σ a: strided per-thread sums, then a fixed shared-memory tree. " +
		"grid.x = 1, block.x = 256.",
	"count_correct_v1": "acc[0] += number of rows whose first-largest logit is the label (integer count, " +
		"fixed reduction, one float add). grid.x = 1, block.x = 256.",
	"accumulate_v1":   "dst += src. 1-D over n.",
	"sgd_momentum_v1": "v = momentum·v + (g + weight_decay·p); p = p − lr·v. 1-D over n.",
	"sgd_nesterov_v1": "d = g + weight_decay·p; v = momentum·v + d; p = p − lr·(d + momentum·v) (Nesterov). " +
		"1-D over n.",
	"adam_v1": "Adam/AdamW step: p = p·decay (decoupled) or g = g + l2·p (else, l2 ≠ 0); m = beta1·m + " +
		"one_minus_beta1·g; v = beta2·v + (one_minus_beta2·g)·g; p = p − step_size·m/(√v/bc2_sqrt + eps) " +
		"(div.rn, sqrt.rn; scalars from geom.AdamCoefficients). 1-D over n.",
	"sgd_momentum_multi_v1": "sgd_momentum_v1 over a device table of (p, g, v, -, n, first block) per tensor: " +
		"one launch for every parameter. grid.x = total blocks of the tensors, block.x = 256.",
	"sgd_nesterov_multi_v1": "sgd_nesterov_v1 over a device table of (p, g, v, -, n, first block) per tensor: " +
		"one launch for every parameter. grid.x = total blocks of the tensors, block.x = 256.",
	"adam_multi_v1": "adam_v1 over a device table of (p, g, m, v, n, first block) per tensor, the same " +
		"scalars for all: one launch for every parameter. grid.x = total blocks of the tensors, block.x = 256.",
	"nonfinite_first_v1": "out[0] = min(out[0], e) for every tensor e of a device table of (x, n, first block) " +
		"holding a NaN or an infinity (exponent bits all ones; an integer atomic minimum on the float's bits, " +
		"deterministic). grid.x = total blocks of 2048 elements, block.x = 256.",
	"softmax_ce_mean_v1": "softmax_ce_v1 and reduce_sum_v1 (scale 1/N) in one launch, the same bits: per-row " +
		"losses and dlogits strided over the block, their fixed-order sum into loss[0]. grid.x = 1, block.x = 256.",
	"gather_rows_f32_v1": "dst[r,:] = src[idx[r],:] (float32; the host validates idx). 1-D over rows·rowLen.",
	"gather_rows_i32_v1": "dst[r,:] = src[idx[r],:] (int32; the host validates idx). 1-D over rows·rowLen.",
	"fill_f32_v1":        "p[i] = v. 1-D over n.",
	"augment_batch_v1": "dst[i,c,y,x] = src[rows[i],c,y+dy−pad,x'+dx−pad] (x' = W−1−x if flipped, else x), 0 outside " +
		"the image; (dy, dx, flip bit) from Hash3(seed, step, rows[i]) as data.Augment.Draw, 64-bit integer math " +
		"(seed and step as 32-bit halves; the host validates rows and pad). 1-D over N·C·H·W.",
	"augment_batch_v2": "augment_batch_v1 from uint8 src: dst[i,c,y,x] = lut[c·256 + src[rows[i],c,ys,xs]] at v1's " +
		"source position, 0 outside the image; lut (C,256) is each channel's standardised value of every byte, " +
		"computed on the host; pad = flip = 0 skips the draw (a plain gather). 1-D over N·C·H·W.",
	"bn_train_fwd_v1": "batch norm, training: μ = lanesum(x)/M, S = lanesum((x−μ)²), invStd = 1/√(S/M+eps), " +
		"y = γ·((x−μ)·invStd)+β; save_mean/save_inv_std (each may be null); running statistics " +
		"(1−m)·r + m·μ and (1−m)·r + m·S/(M−1) (skipped when run_mean is null). Lane sum: thread t adds " +
		"values t, t+256, … of the channel, then block_sum_f32's tree (cpuref.BatchNormTrainForward32 bit " +
		"for bit). grid.x = C, block.x = 256.",
	"bn_eval_fwd_v1": "batch norm, evaluation: y = γ·((x−run_mean)·(1/√(run_var+eps)))+β " +
		"(cpuref.BatchNormEvalForward). 1-D over N·C·HW.",
	"bn_train_fwd_v2": "bn_train_fwd_v1, then with relu ≠ 0 y = max(y, 0) as relu_fwd_v1 before the store " +
		"(the fused BatchNorm+ReLU of the step plan). grid.x = C, block.x = 256.",
	"bn_eval_fwd_v2": "bn_eval_fwd_v1, then with relu ≠ 0 y = max(y, 0) as relu_fwd_v1 before the store. " +
		"1-D over N·C·HW.",
	"bn_train_stats_v1": "bn_train_fwd_v1 without y (neither read nor written): save_mean, save_inv_std and the " +
		"running statistics (skipped when run_mean is null), the same bits. grid.x = C, block.x = 256.",
	"bn_apply_pack_bf16_v1": "y = max?(γ·((x−mean)·invStd)+β) as bn_train_fwd_v2 (eval = 0: invStd = stat, " +
		"bn_train_stats_v1's save_inv_std) or bn_eval_fwd_v2 (eval ≠ 0: invStd = 1/√(stat+eps), stat the running " +
		"variance), ReLU when relu ≠ 0, and dst = y's bfloat16 channels-last copy (N,HW,Cp), the bits of " +
		"pack_transpose_bf16_v2 on y (rows = C, cols = HW, rowsP = Cp, rev = 1). 32×32 shared tiles. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_apply_pack_tf32_v1": "bn_apply_pack_bf16_v1 with dst = y's TF32 channels-last copy (N,HW,Cp) words, the bits of " +
		"pack_transpose_tf32_v2 on y (rows = C, cols = HW, rowsP = Cp, rev = 1), for a TF32 forward pass. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_pack_v1": "bn_bwd_apply_pack_v1 without dx: only dx's TF32 or bfloat16 channels-last copy in dst, the same words. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_apply_pack_v1": "dx = (γ·invStd)·((dy−dβ/M)−x̂·(dγ/M)) as bn_bwd_v1 from the dgamma and dbeta of its launch " +
		"with dx null, and dst = dx's channels-last copy (N,HW,Cp), bfloat16 (tf32 = 0) or TF32 (tf32 ≠ 0), the bits " +
		"of pack_transpose_bf16_v2 or pack_transpose_tf32_v2 on dx (rows = C, cols = HW, rowsP = Cp, rev = 1). " +
		"32×32 shared tiles. grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_v1": "bn_bwd_v1 of the gradient dy at the output of a ReLU after the batch norm: every dy read is " +
		"dy where γ·x̂+β > 0, else 0 (relu_bwd_v1's value, its sign recomputed from x as the forward pass computed it), " +
		"beta read; the bits of relu_bwd_v1 then bn_bwd_v1, no masked copy stored. grid.x = C, block.x = 256.",
	"bn_bwd_relu_apply_pack_v1": "bn_bwd_apply_pack_v1 after bn_bwd_relu_v1's sums: dy read masked as bn_bwd_relu_v1 " +
		"reads it. grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"conv2d_fwd_v7_igemm_bf16y": "conv2d_fwd_v7_igemm_bf16 storing y (N,K,P,Q) as bfloat16, each value (after the bias " +
		"and the ReLU) rounded to nearest, ties to even (cvt.rn.bf16x2.f32), for the batch norm after it (the _bf16x " +
		"kernels). grid = (⌈N·P·Q/128⌉, ⌈K/128⌉), block.x = 128.",
	"bn_train_fwd_bf16x_v1": "bn_train_fwd_v2 with x (N,C,HW) bfloat16, widened exactly as it is read: the bits of " +
		"bn_train_fwd_v2 on the widened x. grid.x = C, block.x = 256.",
	"bn_eval_fwd_bf16x_v1": "bn_eval_fwd_v2 with x (N,C,HW) bfloat16, widened as it is read (its bits on the widened x). " +
		"1-D over N·C·HW.",
	"bn_bwd_bf16x_v1": "bn_bwd_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the widened x). " +
		"grid.x = C, block.x = 256.",
	"bn_bwd_relu_bf16x_v1": "bn_bwd_relu_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the widened x). " +
		"grid.x = C, block.x = 256.",
	"bn_train_stats_bf16x_v1": "bn_train_stats_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the " +
		"widened x). grid.x = C, block.x = 256.",
	"bn_apply_pack_bf16_bf16x_v1": "bn_apply_pack_bf16_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on " +
		"the widened x). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_apply_pack_bf16x_v1": "bn_bwd_apply_pack_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the " +
		"widened x). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_pack_bf16x_v1": "bn_bwd_pack_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the widened x). " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_apply_pack_bf16x_v1": "bn_bwd_relu_apply_pack_v1 with x (N,C,HW) bfloat16, widened as it is read (its " +
		"bits on the widened x). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_pack_bf16x_v1": "bn_bwd_relu_pack_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the " +
		"widened x). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"conv2d_bwd_data_v9_igemm_bf16dx": "conv2d_bwd_data_v9_igemm_bf16 storing dx (N,C,H,W) as bfloat16, each float32 " +
		"sum rounded to nearest, ties to even (cvt.rn.bf16x2.f32), for the batch norm's backward pass before it (the " +
		"_bf16xdy kernels). grid = (⌈N·H·W/128⌉, ⌈C/128⌉), block.x = 128.",
	"bn_bwd_bf16xdy_v1": "bn_bwd_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as it is read (its bits on the " +
		"widened x and dy; dx float32). grid.x = C, block.x = 256.",
	"bn_bwd_relu_bf16xdy_v1": "bn_bwd_relu_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as it is read (its bits " +
		"on the widened x and dy; dx float32). grid.x = C, block.x = 256.",
	"bn_bwd_apply_pack_bf16xdy_v1": "bn_bwd_apply_pack_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as it is read " +
		"(its bits on the widened x and dy; dx float32). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_pack_bf16xdy_v1": "bn_bwd_pack_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as it is read (its bits " +
		"on the widened x and dy). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_apply_pack_bf16xdy_v1": "bn_bwd_relu_apply_pack_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as " +
		"it is read (its bits on the widened x and dy; dx float32). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_pack_bf16xdy_v1": "bn_bwd_relu_pack_bf16x_v1 with dy (N,C,HW) bfloat16 too, widened as it is read " +
		"(its bits on the widened x and dy). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_train_fwd_bf16xy_v1": "bn_train_fwd_bf16x_v1 storing y (N,C,HW) as bfloat16, each value rounded once after " +
		"the epilogue (cvt.rn.bf16x2.f32), for a residual add its only reader. grid.x = C, block.x = 256.",
	"bn_eval_fwd_bf16xy_v1": "bn_eval_fwd_bf16x_v1 storing y (N,C,HW) as bfloat16, each value rounded once after " +
		"the epilogue (cvt.rn.bf16x2.f32). 1-D over N·C·HW.",
	"add_bf16b_v1":      "add_v1 with b (n) bfloat16, widened exactly as it is read (y float32). 1-D over n.",
	"add_relu_bf16b_v1": "add_relu_v1 with b (n) bfloat16, widened exactly as it is read (y float32). 1-D over n.",
	"add_relu_pack_bf16_bf16b_v1": "add_relu_pack_bf16_v1 with b (N,C,HW) bfloat16, widened exactly as it is read " +
		"(y float32). grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_pack_bf16_v1": "bn_apply_pack_bf16_v1 writing only dst, y's bfloat16 channels-last copy (y neither written nor " +
		"a parameter): the same words. grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_pack_bf16_bf16x_v1": "bn_pack_bf16_v1 with x (N,C,HW) bfloat16, widened as it is read (its bits on the widened x). " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_relu_pack_v1": "bn_bwd_relu_apply_pack_v1 without dx: only dx's channels-last copy in dst, the same words. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"bn_bwd_v1": "batch norm backward: dβ = lanesum(dy), dγ = lanesum(dy·x̂), dx = (γ·invStd)·((dy−dβ/M)−x̂·(dγ/M)) " +
		"(dx may be null; cpuref.BatchNormBackward32 bit for bit). grid.x = C, block.x = 256.",
	"avgpool_fwd_v1": "y = (Σ of the R×S window over the zero-padded input, r then s ascending from +0)/(R·S) " +
		"(count_include_pad). 1-D over N·C·P·Q.",
	"avgpool_bwd_v1": "dx[i] = (Σ dy over the windows (p,q ascending) covering i, from +0)/(R·S) (gather, no atomics). " +
		"1-D over N·C·H·W.",
	"global_avgpool_fwd_v1": "y[n,c] = (Σ_j x[n,c,j], j ascending from +0)/HW. 1-D over N·C.",
	"global_avgpool_bwd_v1": "dx[n,c,j] = dy[n,c]/HW. 1-D over N·C·HW.",
	"act_fwd_v1": "y = act(x) for act = kActLeakyReLU (x > 0 ? x : param·x), kActSigmoid, kActTanh, kActSiLU, " +
		"kActGELUErf, kActGELUTanh (actf.cuh, cpuref's float32 activations bit for bit). 1-D over n.",
	"act_bwd_v1": "dx = dy·act'(x) (leaky ReLU: x > 0 ? dy : param·dy; SiLU, GELU from x) or from y " +
		"(sigmoid: (dy·(1−y))·y; tanh: dy·(1−y·y)); the unread pointer may be null. 1-D over n.",
	"dropout_v1": "y = (x·mask)·(1/(1−p)), mask = float(Philox4x32-10((i/4, stream, step_lo, step_hi), " +
		"(seed_lo, seed_hi))[i mod 4] >> 8)·2^−24 ≥ p (cpuref.DropoutMask); forward and backward. " +
		"1-D over ⌈n/4⌉.",
	"add_v1": "y = a + b. 1-D over n.",
	"add_relu_pack_bf16_v1": "y = max(a + b, 0) (add_relu_v1's bits) and y's bfloat16 channels-last copy " +
		"(pack_transpose_bf16_v2's words, rows = C, cols = HW, rowsP = Cp, rev = 1) in dst and, when not null, dst2. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"add_relu_pack_tf32_v1": "add_relu_pack_bf16_v1 with dst (and dst2 when not null) = y's TF32 channels-last copy " +
		"(N,HW,Cp) words, the bits of pack_transpose_tf32_v2 on y, for a TF32 forward pass. " +
		"grid = (⌈HW/32⌉, ⌈Cp/32⌉, N), block = (32, 8).",
	"add_relu_v1": "y = max(a + b, 0) (relu_fwd_v1's NaN and −0 rules): add_v1 then relu_fwd_v1 in one pass. 1-D over n.",
	"channel_copy_v1": "dst[n, dst_off+c, j] = src[n, src_off+c, j] for c < C, j < HW (concatenation's forward " +
		"and backward). 1-D over N·C·HW.",
	"gather_batch_at_v1": "dx[r,:] = x[order[off+r],:] and, when labels is not null, dlabels[r] = labels[order[off+r]], " +
		"32-bit words copied; off = at[0] read when it runs (0 when at is null); nothing written for an off outside " +
		"[0, orderLen−rows], a row outside [0, srcRows) skipped. 1-D over rows·rowLen + rows.",
	"dropout_at_v1": "dropout_v1 with the key's step read from device memory (step[0] low, step[1] high) when it runs. " +
		"1-D over ⌈n/4⌉.",
	"sgd_momentum_multi_at_v1": "sgd_momentum_multi_v1 with lr = s[0], momentum = s[1], weight_decay = s[2] read from " +
		"device memory. grid.x = Σ ⌈n_e/256⌉, block.x = 256.",
	"sgd_nesterov_multi_at_v1": "sgd_nesterov_multi_v1 with lr = s[0], momentum = s[1], weight_decay = s[2] read from " +
		"device memory. grid.x = Σ ⌈n_e/256⌉, block.x = 256.",
	"adam_multi_at_v1": "adam_multi_v1 with beta1, 1−beta1, beta2, 1−beta2, step_size, bc2_sqrt, eps, l2, decay = " +
		"s[0..8] and decoupled the int32 word s[9], read from device memory. grid.x = Σ ⌈n_e/256⌉, block.x = 256.",
	"dense_bwd_v2": "dw (dense_bwd_weight_v1), db (reduce_cols_v1 on dy; db may be null) and dx (dense_bwd_data_v1; dx " +
		"may be null) by block ranges, each element as there. grid.x = ⌈Out·In/256⌉ + ⌈Out/256⌉ + ⌈N·In/256⌉.",
	"softmax_ce_metrics_v1": "softmax_ce_mean_v1, then loss_sum[0] += loss[0] and correct[0] += the rows whose first " +
		"largest logit is the label (count_correct_v1). grid.x = 1, block.x = 256.",
	"maxpool_bwd_relu_v1": "dx[i] = x[i] > 0 ? maxpool_bwd_v1's routed gradient : 0 (x the pool's input, a ReLU's " +
		"output). 1-D over N·C·H·W.",
	"conv2d_bwd_filter_bias_v1": "dw as conv2d_bwd_filter_v1_direct (blocks < K·C·R·S) and db as conv2d_bwd_bias_v1 " +
		"(the K blocks after). grid.x = K·C·R·S + K, block.x = 256.",
	"conv2d_bwd_filter_reduce_bias_v1": "dw as conv2d_bwd_filter_v2_reduce (blocks < ⌈n/256⌉) and db as " +
		"conv2d_bwd_bias_v1 (the K blocks after). grid.x = ⌈n/256⌉ + K, block.x = 256.",
	"maxpool_dense_fwd_v1": "maxpool_fwd_v1 of image n, then z[n,o] = dense_fwd_v1 of its pooled values (In = C·P·Q); " +
		"one block per image. grid.x = N, block.x = 256.",
	"dense_bwd_pool_relu_v1": "dw and db as dense_bwd_v2 and, for the pool's input, dxr[i] = xr[i] > 0 ? Σ over windows " +
		"with argmax i of dense_bwd_data_v1's dx : 0 (the dense dx never stored). " +
		"grid.x = ⌈Out·In/256⌉ + ⌈Out/256⌉ + ⌈N·C·H·W/256⌉.",
	"maxpool_dense_softmax_v1": "maxpool_dense_fwd_v1's block per image, then its softmax_ce_metrics_v1 row into " +
		"rows[n], rows[N+n]; the last block (an integer ticket, rows[2N], back to 0) reduces as " +
		"softmax_ce_metrics_v1. grid.x = N, block.x = 256.",
	"augment_batch_at_v1": "augment_batch_v2 and, when labels is not null, dlabels[i] = labels[row] for row = " +
		"order[off+i], off = at[0] (0 when at is null), the draw's step from astep[0..1] when not null; nothing " +
		"written for an off out of range, a row outside [0, srcRows) skipped. 1-D over N·C·H·W + N.",
}
