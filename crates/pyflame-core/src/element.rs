//! The [`Element`] trait ties a Rust scalar type to its [`DType`] and gives the conversions
//! kernels need (every storage type can be read as f32, f64 or i64 and written back).

use crate::DType;
use half::{bf16, f16};

/// A scalar type that can live in a [`crate::Storage`].
pub trait Element: Copy + Send + Sync + 'static + Default + PartialOrd {
    /// The dtype tag of this type.
    const DTYPE: DType;
    /// Converts to f32 (booleans become 0/1).
    fn to_f32(self) -> f32;
    /// Converts to f64.
    fn to_f64(self) -> f64;
    /// Converts to i64 (floats truncate toward zero, NaN becomes 0).
    fn to_i64(self) -> i64;
    /// Converts from f32 (integers truncate, saturating like Rust's `as`).
    fn from_f32(v: f32) -> Self;
    /// Converts from f64.
    fn from_f64(v: f64) -> Self;
    /// Converts from i64 (wrapping for narrower integers, like C casts).
    fn from_i64(v: i64) -> Self;
}

macro_rules! impl_prim {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}

impl_prim!(f32, DType::Float32);
impl_prim!(f64, DType::Float64);
impl_prim!(i64, DType::Int64);
impl_prim!(i32, DType::Int32);
impl_prim!(i16, DType::Int16);
impl_prim!(i8, DType::Int8);
impl_prim!(u8, DType::UInt8);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as u8 as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    #[inline(always)]
    fn to_i64(self) -> i64 {
        self as i64
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v != 0.0
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

macro_rules! impl_half {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                <$t>::to_f32(self) as i64
            }
            #[inline(always)]
            fn from_f32(v: f32) -> Self {
                <$t>::from_f32(v)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                <$t>::from_f32(v as f32)
            }
        }
    };
}

impl_half!(f16, DType::Float16);
impl_half!(bf16, DType::BFloat16);

/// Calls `$body` with `$T` bound to the Rust type of a runtime `DType`.
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Float32 => {
                type $T = f32;
                $body
            }
            $crate::DType::Float64 => {
                type $T = f64;
                $body
            }
            $crate::DType::Float16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::BFloat16 => {
                type $T = half::bf16;
                $body
            }
            $crate::DType::Int64 => {
                type $T = i64;
                $body
            }
            $crate::DType::Int32 => {
                type $T = i32;
                $body
            }
            $crate::DType::Int16 => {
                type $T = i16;
                $body
            }
            $crate::DType::Int8 => {
                type $T = i8;
                $body
            }
            $crate::DType::UInt8 => {
                type $T = u8;
                $body
            }
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}
