//! Host copies of tensor values (its own module so that components, weights and the forward
//! pass can all use it without depending on each other).

use burn::prelude::*;

/// Host copy of a float tensor's values, row-major.
pub fn host_values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor data")
}

/// Host copy of an integer tensor's values, row-major.
pub fn host_ints<const D: usize>(t: &Tensor<D, Int>) -> Vec<i64> {
    t.to_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("int tensor data")
}
