//! The paging parameters of the process and job lists.

use super::problem::Problem;
use super::{ApiResult, Ctx};

/// `limit`: 1–1000 (larger values are served as 1000).
pub fn limit_param(ctx: &Ctx, default: usize) -> ApiResult<usize> {
    match ctx.param("limit") {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(1000)),
            _ => Err(Problem::bad_request(
                "limit",
                format!("limit '{v}' is not an integer from 1 to 1000"),
            )),
        },
    }
}

pub fn offset_param(ctx: &Ctx) -> ApiResult<usize> {
    match ctx.param("offset") {
        None => Ok(0),
        Some(v) => v.trim().parse::<usize>().map_err(|_| {
            Problem::bad_request(
                "offset",
                format!("offset '{v}' is not a non-negative integer"),
            )
        }),
    }
}
