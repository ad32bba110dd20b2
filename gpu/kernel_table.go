package gpu

import (
	"fmt"

	"github.com/convtrain/convtrain/kernels"
)

// The kernels this runtime launches. Their names, parameters and targets
// come from the generated table of package kernels (kernels/table_gen.go,
// from the .cu entry points): a launcher only names its kernel, here or in
// the conv variant table (variants.go), and launch checks its arguments
// against the parameters the table declares.

// kernelID indexes the kernels this runtime launches: the kernels below,
// then the convolution variants of variants.go.
type kernelID int

const (
	kConvBwdBias kernelID = iota
	kConvBwdFilterReduce
	kReLUFwd
	kReLUBwd
	kMaxPoolFwd
	kMaxPoolBwd
	kDenseFwd
	kDenseBwdData
	kDenseBwdWeight
	kReduceCols
	kSoftmaxCE
	kMSE
	kReduceSum
	kCountCorrect
	kAccumulate
	kSGDMomentum
	kSGDNesterov
	kAdam
	kGatherF32
	kGatherI32
	kFill
	kBNTrainFwd
	kBNEvalFwd
	kBNTrainReLUFwd
	kBNEvalReLUFwd
	kBNBwd
	kAvgPoolFwd
	kAvgPoolBwd
	kGlobalAvgPoolFwd
	kGlobalAvgPoolBwd
	kActFwd
	kActBwd
	kDropout
	kAdd
	kAddReLU
	kChannelCopy
	kPackNHWCBF16
	kPackNHWCTF32
	kAugment
	kAugmentU8
	kSGDMomentumMulti
	kSGDNesterovMulti
	kAdamMulti
	kNonFiniteFirst
	kSoftmaxCEMean
	kPackCRSKFlipBF16
	kPackCRSKFlipTF32
	kPackTransposeBF16
	kPackTransposeTF32
	kPackTransposeF32
	kGatherBatchAt
	kDropoutAt
	kSGDMomentumMultiAt
	kSGDNesterovMultiAt
	kAdamMultiAt
	kDenseBwd
	kSoftmaxCEMetrics
	kMaxPoolBwdReLU
	kConvBwdFilterBias
	kConvBwdFilterReduceBias
	kMaxPoolDenseFwd
	kDenseBwdPoolReLU
	kMaxPoolDenseSoftmax
	kAugmentAt
	kConvBwdFilterReducePipe
	kBNTrainStats
	kBNApplyPackBF16
	kBNBwdApplyPack
	kBNBwdPack
	kAddReLUPackBF16
	kBNBwdReLU
	kBNBwdReLUApplyPack
	kBNBwdReLUPack
	kBNApplyPackTF32
	kAddReLUPackTF32
	kConvFwdBF16Y
	kBNTrainFwdBF16X
	kBNEvalFwdBF16X
	kBNBwdBF16X
	kBNBwdReLUBF16X
	kBNTrainStatsBF16X
	kBNApplyPackBF16X
	kBNBwdApplyPackBF16X
	kBNBwdPackBF16X
	kBNBwdReLUApplyPackBF16X
	kBNBwdReLUPackBF16X
	kBNPackBF16
	kBNPackBF16X
	kConvBwdDataBF16DX
	kBNBwdBF16XDY
	kBNBwdReLUBF16XDY
	kBNBwdApplyPackBF16XDY
	kBNBwdPackBF16XDY
	kBNBwdReLUApplyPackBF16XDY
	kBNBwdReLUPackBF16XDY
	kReLUBwdBF16DY
	kBNTrainFwdBF16XY
	kBNEvalFwdBF16XY
	kAddBF16B
	kAddReLUBF16B
	kAddReLUPackBF16B
	numPlainKernels
)

// plainKernels names the kernels that are not convolution variants.
var plainKernels = [numPlainKernels]string{
	kConvBwdBias:               "conv2d_bwd_bias_v1",
	kConvBwdFilterReduce:       "conv2d_bwd_filter_v2_reduce",
	kReLUFwd:                   "relu_fwd_v1",
	kReLUBwd:                   "relu_bwd_v1",
	kMaxPoolFwd:                "maxpool_fwd_v1",
	kMaxPoolBwd:                "maxpool_bwd_v1",
	kDenseFwd:                  "dense_fwd_v1",
	kDenseBwdData:              "dense_bwd_data_v1",
	kDenseBwdWeight:            "dense_bwd_weight_v1",
	kReduceCols:                "reduce_cols_v1",
	kSoftmaxCE:                 "softmax_ce_v1",
	kMSE:                       "mse_v1",
	kReduceSum:                 "reduce_sum_v1",
	kCountCorrect:              "count_correct_v1",
	kAccumulate:                "accumulate_v1",
	kSGDMomentum:               "sgd_momentum_v1",
	kSGDNesterov:               "sgd_nesterov_v1",
	kAdam:                      "adam_v1",
	kGatherF32:                 "gather_rows_f32_v1",
	kGatherI32:                 "gather_rows_i32_v1",
	kFill:                      "fill_f32_v1",
	kBNTrainFwd:                "bn_train_fwd_v1",
	kBNEvalFwd:                 "bn_eval_fwd_v1",
	kBNTrainReLUFwd:            "bn_train_fwd_v2",
	kBNEvalReLUFwd:             "bn_eval_fwd_v2",
	kBNBwd:                     "bn_bwd_v1",
	kAvgPoolFwd:                "avgpool_fwd_v1",
	kAvgPoolBwd:                "avgpool_bwd_v1",
	kGlobalAvgPoolFwd:          "global_avgpool_fwd_v1",
	kGlobalAvgPoolBwd:          "global_avgpool_bwd_v1",
	kActFwd:                    "act_fwd_v1",
	kActBwd:                    "act_bwd_v1",
	kDropout:                   "dropout_v1",
	kAdd:                       "add_v1",
	kAddReLU:                   "add_relu_v1",
	kChannelCopy:               "channel_copy_v1",
	kPackNHWCBF16:              "pack_nhwc_bf16_v1",
	kPackNHWCTF32:              "pack_nhwc_tf32_v1",
	kAugment:                   "augment_batch_v1",
	kAugmentU8:                 "augment_batch_v2",
	kSGDMomentumMulti:          "sgd_momentum_multi_v1",
	kSGDNesterovMulti:          "sgd_nesterov_multi_v1",
	kAdamMulti:                 "adam_multi_v1",
	kNonFiniteFirst:            "nonfinite_first_v1",
	kSoftmaxCEMean:             "softmax_ce_mean_v1",
	kPackCRSKFlipBF16:          "pack_crsk_flip_bf16_v1",
	kPackCRSKFlipTF32:          "pack_crsk_flip_tf32_v1",
	kPackTransposeBF16:         "pack_transpose_bf16_v2",
	kPackTransposeTF32:         "pack_transpose_tf32_v2",
	kPackTransposeF32:          "pack_transpose_f32_v2",
	kGatherBatchAt:             "gather_batch_at_v1",
	kDropoutAt:                 "dropout_at_v1",
	kSGDMomentumMultiAt:        "sgd_momentum_multi_at_v1",
	kSGDNesterovMultiAt:        "sgd_nesterov_multi_at_v1",
	kAdamMultiAt:               "adam_multi_at_v1",
	kDenseBwd:                  "dense_bwd_v2",
	kSoftmaxCEMetrics:          "softmax_ce_metrics_v1",
	kMaxPoolBwdReLU:            "maxpool_bwd_relu_v1",
	kConvBwdFilterBias:         "conv2d_bwd_filter_bias_v1",
	kConvBwdFilterReduceBias:   "conv2d_bwd_filter_reduce_bias_v1",
	kMaxPoolDenseFwd:           "maxpool_dense_fwd_v1",
	kDenseBwdPoolReLU:          "dense_bwd_pool_relu_v1",
	kMaxPoolDenseSoftmax:       "maxpool_dense_softmax_v1",
	kAugmentAt:                 "augment_batch_at_v1",
	kConvBwdFilterReducePipe:   "conv2d_bwd_filter_v13_reduce",
	kBNTrainStats:              "bn_train_stats_v1",
	kBNApplyPackBF16:           "bn_apply_pack_bf16_v1",
	kBNBwdApplyPack:            "bn_bwd_apply_pack_v1",
	kBNBwdPack:                 "bn_bwd_pack_v1",
	kAddReLUPackBF16:           "add_relu_pack_bf16_v1",
	kBNBwdReLU:                 "bn_bwd_relu_v1",
	kBNBwdReLUApplyPack:        "bn_bwd_relu_apply_pack_v1",
	kBNBwdReLUPack:             "bn_bwd_relu_pack_v1",
	kBNApplyPackTF32:           "bn_apply_pack_tf32_v1",
	kAddReLUPackTF32:           "add_relu_pack_tf32_v1",
	kConvFwdBF16Y:              "conv2d_fwd_v7_igemm_bf16y",
	kBNTrainFwdBF16X:           "bn_train_fwd_bf16x_v1",
	kBNEvalFwdBF16X:            "bn_eval_fwd_bf16x_v1",
	kBNBwdBF16X:                "bn_bwd_bf16x_v1",
	kBNBwdReLUBF16X:            "bn_bwd_relu_bf16x_v1",
	kBNTrainStatsBF16X:         "bn_train_stats_bf16x_v1",
	kBNApplyPackBF16X:          "bn_apply_pack_bf16_bf16x_v1",
	kBNBwdApplyPackBF16X:       "bn_bwd_apply_pack_bf16x_v1",
	kBNBwdPackBF16X:            "bn_bwd_pack_bf16x_v1",
	kBNBwdReLUApplyPackBF16X:   "bn_bwd_relu_apply_pack_bf16x_v1",
	kBNBwdReLUPackBF16X:        "bn_bwd_relu_pack_bf16x_v1",
	kBNPackBF16:                "bn_pack_bf16_v1",
	kBNPackBF16X:               "bn_pack_bf16_bf16x_v1",
	kConvBwdDataBF16DX:         "conv2d_bwd_data_v9_igemm_bf16dx",
	kBNBwdBF16XDY:              "bn_bwd_bf16xdy_v1",
	kBNBwdReLUBF16XDY:          "bn_bwd_relu_bf16xdy_v1",
	kBNBwdApplyPackBF16XDY:     "bn_bwd_apply_pack_bf16xdy_v1",
	kBNBwdPackBF16XDY:          "bn_bwd_pack_bf16xdy_v1",
	kBNBwdReLUApplyPackBF16XDY: "bn_bwd_relu_apply_pack_bf16xdy_v1",
	kBNBwdReLUPackBF16XDY:      "bn_bwd_relu_pack_bf16xdy_v1",
	kReLUBwdBF16DY:             "relu_bwd_bf16dy_v1",
	kBNTrainFwdBF16XY:          "bn_train_fwd_bf16xy_v1",
	kBNEvalFwdBF16XY:           "bn_eval_fwd_bf16xy_v1",
	kAddBF16B:                  "add_bf16b_v1",
	kAddReLUBF16B:              "add_relu_bf16b_v1",
	kAddReLUPackBF16B:          "add_relu_pack_bf16_bf16b_v1",
}

// kernelEntry is a launched kernel as the generated table declares it.
type kernelEntry struct {
	name   string
	params []kernels.Param
	kinds  []argKind // of params
	target string
}

// kernelTable is every kernelID's entry; kernelTableErr says what is wrong
// when a name is missing from the generated table (a kernel renamed in its
// .cu without its launcher), listed twice or has too many parameters.
// Open returns it.
var kernelTable, kernelTableErr = resolveKernels()

// resolveKernels looks every kernelID's name up in kernels.All.
func resolveKernels() ([numKernels]kernelEntry, error) {
	var table [numKernels]kernelEntry
	names := make(map[string]kernelID)
	var first error
	for id := kernelID(0); id < numKernels; id++ {
		name := kernelName(id)
		if prev, dup := names[name]; dup && first == nil {
			first = fmt.Errorf("gpu: kernels %d and %d are both %q", prev, id, name)
		}
		names[name] = id
		k, ok := kernels.Lookup(name)
		switch {
		case !ok:
			if first == nil {
				first = fmt.Errorf("gpu: kernel %q is not in kernels.All (kernels/table_gen.go, generated from kernels/*.cu)", name)
			}
			continue
		case len(k.Params) > maxArgs:
			if first == nil {
				first = fmt.Errorf("gpu: kernel %s has %d parameters, more than the %d a launch stages", name, len(k.Params), maxArgs)
			}
			continue
		}
		kinds := make([]argKind, len(k.Params))
		for i, p := range k.Params {
			kinds[i] = kindOf(p.Type)
			if kinds[i] == kindUnknown && first == nil {
				first = fmt.Errorf("gpu: kernel %s parameter %d (%s) has type %q, want ptr, i32 or f32", name, i, p.Name, p.Type)
			}
		}
		table[id] = kernelEntry{name: name, params: k.Params, kinds: kinds, target: k.Target}
	}
	return table, first
}

// kernelName is the name of kernel id: from plainKernels or the conv
// variant table.
func kernelName(id kernelID) string {
	if id >= 0 && id < numPlainKernels {
		return plainKernels[id]
	}
	if v, ok := variantOf(id); ok {
		return v.name
	}
	return fmt.Sprintf("kernelID(%d)", int(id))
}
