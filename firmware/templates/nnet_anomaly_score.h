// Anomaly score layers of trigger-ad (registered with hls4ml through its extension API).
//   sum_squares:   res[0] = sum_i data[i]^2, accumulated exactly, rounded once into res_T.
//   threshold_bit: res[0] = 1 if the score is above the threshold, compared in LSB units of the
//                  score type: raw(score) > CONFIG_T::threshold_units, raw read as unsigned or
//                  (CONFIG_T::score_signed, e.g. a logit) two's-complement integer.
#ifndef NNET_ANOMALY_SCORE_H_
#define NNET_ANOMALY_SCORE_H_

#include "ap_fixed.h"
#include "ap_int.h"

namespace nnet {

template <class data_T, class res_T, typename CONFIG_T>
void sum_squares(data_T data[CONFIG_T::n_in], res_T res[1]) {
    #pragma HLS INLINE
    // Exact: the square of ap_[u]fixed<W,I> fits ap_ufixed<2W,2I>; n_in terms add log2_n bits.
    typedef ap_ufixed<2 * data_T::width + CONFIG_T::log2_n, 2 * data_T::iwidth + CONFIG_T::log2_n> acc_t;
    acc_t acc = 0;
SumSquares:
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
        #pragma HLS UNROLL
        acc += (acc_t)(data[i] * data[i]);
    }
    res[0] = (res_T)acc;
}

template <class data_T, class res_T, typename CONFIG_T>
void threshold_bit(data_T data[1], res_T res[1]) {
    #pragma HLS INLINE
    ap_uint<data_T::width> raw = data[0].range(data_T::width - 1, 0);
    if (CONFIG_T::score_signed) {
        // a signed score (e.g. a classifier logit): the raw bits as two's complement
        ap_int<data_T::width> sraw = raw;
        res[0] = (sraw > (long long)CONFIG_T::threshold_units) ? 1 : 0;
    } else {
        res[0] = (raw > (ap_uint<data_T::width>)CONFIG_T::threshold_units) ? 1 : 0;
    }
}

} // namespace nnet

#endif
