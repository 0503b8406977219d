//! What the kind modules share: `use super::prelude::*;` brings the analysis traits and
//! contexts, the table declarations and the row builder.

pub(crate) use crate::analysis::{
    Analysis, AnalysisError, BatchContext, BuildContext, Kind, ModelContext, Requirements,
    TableDecl, emit,
};
pub(crate) use crate::table::{Rows, TableSink};
