//! Data types and PyTorch-style type promotion.

use std::fmt;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean (1 byte).
    Bool,
    /// Unsigned 8-bit integer.
    UInt8,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE half precision (storage type; computed in f32).
    Float16,
    /// bfloat16 (storage type; computed in f32).
    BFloat16,
    /// Single precision (the default).
    Float32,
    /// Double precision.
    Float64,
}

/// Category used by type promotion: bool < integer < floating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Booleans.
    Bool,
    /// Signed and unsigned integers.
    Integer,
    /// Floating point numbers.
    Float,
}

/// Every dtype, in a stable order.
pub const ALL_DTYPES: [DType; 10] = [
    DType::Float32,
    DType::Float16,
    DType::BFloat16,
    DType::Float64,
    DType::Int64,
    DType::Int32,
    DType::Int16,
    DType::Int8,
    DType::UInt8,
    DType::Bool,
];

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::UInt8 | DType::Int8 => 1,
            DType::Int16 | DType::Float16 | DType::BFloat16 => 2,
            DType::Int32 | DType::Float32 => 4,
            DType::Int64 | DType::Float64 => 8,
        }
    }

    /// Canonical lower-case name (`"float32"`, `"bool"`...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::UInt8 => "uint8",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
        }
    }

    /// Parses a dtype name, accepting common aliases (`"float"`, `"half"`, `"long"`, `"bool_"`).
    pub fn from_name(name: &str) -> Option<DType> {
        Some(match name {
            "bool" | "bool_" => DType::Bool,
            "uint8" => DType::UInt8,
            "int8" => DType::Int8,
            "int16" | "short" => DType::Int16,
            "int32" | "int" => DType::Int32,
            "int64" | "long" => DType::Int64,
            "float16" | "half" => DType::Float16,
            "bfloat16" => DType::BFloat16,
            "float32" | "float" => DType::Float32,
            "float64" | "double" => DType::Float64,
            _ => return None,
        })
    }

    /// Promotion category.
    pub fn category(self) -> Category {
        match self {
            DType::Bool => Category::Bool,
            DType::UInt8 | DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => {
                Category::Integer
            }
            _ => Category::Float,
        }
    }

    /// True for floating point dtypes.
    pub fn is_float(self) -> bool {
        self.category() == Category::Float
    }

    /// True for integer dtypes (not bool).
    pub fn is_int(self) -> bool {
        self.category() == Category::Integer
    }

    /// Promotes two tensor dtypes the way PyTorch does (`torch.promote_types`).
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        match (a.category(), b.category()) {
            (Category::Float, Category::Float) => match (a, b) {
                (Float64, _) | (_, Float64) => Float64,
                (Float32, _) | (_, Float32) => Float32,
                // float16 with bfloat16 has no common 16-bit type.
                _ => Float32,
            },
            (Category::Float, _) => a,
            (_, Category::Float) => b,
            (Category::Bool, _) => b,
            (_, Category::Bool) => a,
            (Category::Integer, Category::Integer) => {
                let rank = |d: DType| match d {
                    Int8 | UInt8 => 1,
                    Int16 => 2,
                    Int32 => 3,
                    _ => 4,
                };
                if (a == UInt8 && b == Int8) || (a == Int8 && b == UInt8) {
                    Int16
                } else if rank(a) >= rank(b) {
                    if a == UInt8 {
                        b
                    } else {
                        a
                    }
                } else {
                    b
                }
            }
        }
    }

    /// Result dtype when a tensor of dtype `self` meets a Python scalar of `scalar` category.
    /// A scalar only changes the tensor's dtype when it is of a higher category
    /// (int tensor + 1.5 -> float32; float16 tensor + 2.0 stays float16).
    pub fn promote_with_scalar(self, scalar: Category) -> DType {
        if scalar <= self.category() {
            self
        } else {
            match scalar {
                Category::Float => DType::Float32,
                Category::Integer => DType::Int64,
                Category::Bool => DType::Bool,
            }
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_matches_pytorch() {
        use DType::*;
        assert_eq!(DType::promote(Int32, Float16), Float16);
        assert_eq!(DType::promote(Int64, Float32), Float32);
        assert_eq!(DType::promote(UInt8, Int8), Int16);
        assert_eq!(DType::promote(Bool, Int8), Int8);
        assert_eq!(DType::promote(Int32, Int64), Int64);
        assert_eq!(DType::promote(UInt8, Int32), Int32);
        assert_eq!(DType::promote(Float16, BFloat16), Float32);
        assert_eq!(DType::promote(Float32, Float64), Float64);
        assert_eq!(Int32.promote_with_scalar(Category::Float), Float32);
        assert_eq!(Float16.promote_with_scalar(Category::Float), Float16);
        assert_eq!(Bool.promote_with_scalar(Category::Integer), Int64);
        assert_eq!(Int8.promote_with_scalar(Category::Integer), Int8);
    }

    #[test]
    fn names_round_trip() {
        for d in ALL_DTYPES {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
    }
}
