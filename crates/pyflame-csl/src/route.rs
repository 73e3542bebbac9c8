//! Color and route assignment: one color per fabric role in use, with static routes over the
//! collectives' PE rectangle (checkerboard colors for reduce chains, where PEs relay).

use crate::plan::{dir, Axis, Phase, Plan, Role, Route};
use crate::CslError;

/// Highest color number handed out (21-23 are memcpy's).
pub const MAX_USER_COLOR: u8 = 20;

/// Fills `plan.colors`, `plan.routes` and `plan.fabric_rect`.
pub fn assign(plan: &mut Plan) -> Result<(), CslError> {
    let mut rect: Option<(usize, usize)> = None;
    let mut roles = std::collections::BTreeSet::new();
    for ph in &plan.phases {
        let (buf, r) = match ph {
            Phase::Local { .. } => continue,
            Phase::Chain { buf, axis, .. } => {
                (*buf, vec![Role::ChainA(*axis), Role::ChainB(*axis)])
            }
            Phase::BcastBack { buf, axis, .. } => (*buf, vec![Role::Back(*axis)]),
            Phase::ToEdge { src, axis, .. } => (*src, vec![Role::Edge(*axis)]),
        };
        let p = plan.bufs[buf].placement;
        let here = (p.pc, p.pr);
        match rect {
            None => rect = Some(here),
            Some(have) if have != here => {
                return Err(CslError::Unsupported(vec![format!(
                    "fabric collectives on two PE rectangles ({}x{} and {}x{}); every reduction, softmax and matmul that crosses PEs must use the same layout",
                    have.0, have.1, here.0, here.1
                )]))
            }
            _ => {}
        }
        roles.extend(r);
    }
    plan.fabric_rect = rect;
    let Some((w, h)) = rect else { return Ok(()) };
    for (c, role) in roles.into_iter().enumerate() {
        let color = c as u8;
        if color > MAX_USER_COLOR {
            return Err(CslError::Unsupported(vec![
                "more than 21 fabric colors needed".into(),
            ]));
        }
        plan.colors.insert(role, color);
    }
    let colors: Vec<(Role, u8)> = plan.colors.iter().map(|(r, c)| (*r, *c)).collect();
    for (role, color) in colors {
        let axis = match role {
            Role::ChainA(a) | Role::ChainB(a) | Role::Back(a) | Role::Edge(a) => a,
        };
        let (len, lines) = if axis == Axis::Row { (w, h) } else { (h, w) };
        let (fwd, bwd) = if axis == Axis::Row {
            (dir::EAST, dir::WEST)
        } else {
            (dir::SOUTH, dir::NORTH)
        };
        for line in 0..lines {
            for i in 0..len {
                let route = route_for(role, i, len, fwd, bwd);
                if let Some(r) = route {
                    let (x, y) = if axis == Axis::Row {
                        (i, line)
                    } else {
                        (line, i)
                    };
                    plan.routes.insert((x, y, color), r);
                }
            }
        }
    }
    Ok(())
}

/// The route of `role` at position `i` of `len` along the axis (`fwd` = towards the last PE).
pub fn route_for(role: Role, i: usize, len: usize, fwd: u8, bwd: u8) -> Option<Route> {
    let last = len - 1;
    let r = |rx, tx| Some(Route { rx, tx });
    match role {
        Role::ChainA(_) | Role::ChainB(_) => {
            let parity = usize::from(matches!(role, Role::ChainB(_)));
            // positions with i % 2 == parity send forward; their successors receive
            if i % 2 == parity && i < last {
                r(dir::RAMP, fwd)
            } else if i >= 1 && (i - 1) % 2 == parity {
                r(bwd, dir::RAMP)
            } else {
                None
            }
        }
        Role::Back(_) => {
            if i == last {
                r(dir::RAMP, bwd)
            } else if i == 0 {
                r(fwd, dir::RAMP)
            } else {
                r(fwd, dir::RAMP | bwd)
            }
        }
        Role::Edge(_) => {
            if i == last {
                r(bwd, dir::RAMP)
            } else if i == 0 {
                r(dir::RAMP, fwd)
            } else {
                r(dir::RAMP | bwd, fwd)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_colors_alternate() {
        // 4 PEs along a row: 0 sends on A, 1 receives A and sends B, 2 receives B ...
        let (e, w) = (dir::EAST, dir::WEST);
        let a = |i| route_for(Role::ChainA(Axis::Row), i, 4, e, w);
        let b = |i| route_for(Role::ChainB(Axis::Row), i, 4, e, w);
        assert_eq!(
            a(0),
            Some(Route {
                rx: dir::RAMP,
                tx: e
            })
        );
        assert_eq!(
            a(1),
            Some(Route {
                rx: w,
                tx: dir::RAMP
            })
        );
        assert_eq!(
            b(1),
            Some(Route {
                rx: dir::RAMP,
                tx: e
            })
        );
        assert_eq!(
            b(2),
            Some(Route {
                rx: w,
                tx: dir::RAMP
            })
        );
        assert_eq!(b(0), None);
        assert_eq!(
            a(3),
            Some(Route {
                rx: w,
                tx: dir::RAMP
            })
        );
    }

    #[test]
    fn broadcast_back_relays() {
        let r = |i| route_for(Role::Back(Axis::Col), i, 3, dir::SOUTH, dir::NORTH);
        assert_eq!(
            r(2),
            Some(Route {
                rx: dir::RAMP,
                tx: dir::NORTH
            })
        );
        assert_eq!(
            r(1),
            Some(Route {
                rx: dir::SOUTH,
                tx: dir::RAMP | dir::NORTH
            })
        );
        assert_eq!(
            r(0),
            Some(Route {
                rx: dir::SOUTH,
                tx: dir::RAMP
            })
        );
    }
}
