//! Color and route assignment: one color per fabric role in use, with static routes over the
//! collectives' PE rectangle (checkerboard colors for reduce chains, where PEs relay).

use crate::plan::{dir, Axis, Phase, Plan, Role, Route};
use crate::CslError;

/// Highest color number handed out (21-23 are memcpy's).
pub const MAX_USER_COLOR: u8 = 20;

/// Fills `plan.colors`, `plan.routes` and `plan.fabric_rect`.
pub fn assign(plan: &mut Plan) -> Result<(), CslError> {
    // per role: its length along the axis and the number of lines (PE rows or columns) it
    // runs on; collectives on different rectangles share a role's color when the lengths
    // agree (the route of a position depends only on it and the length)
    let mut roles: std::collections::BTreeMap<Role, (usize, usize)> = Default::default();
    let mut rect: Option<(usize, usize)> = None;
    for ph in &plan.phases {
        let r = match ph {
            Phase::Local { .. } => continue,
            Phase::Chain { axis, .. } => vec![Role::ChainA(*axis), Role::ChainB(*axis)],
            Phase::BcastBack { axis, .. } => vec![Role::Back(*axis)],
            Phase::ToEdge { axis, .. } => vec![Role::Edge(*axis)],
        };
        let Some((w, h)) = plan.phase_rect(ph) else {
            continue;
        };
        rect = Some(rect.map_or((w, h), |(rw, rh)| (rw.max(w), rh.max(h))));
        for role in r {
            let (len, lines) = if role_axis(role) == Axis::Row {
                (w, h)
            } else {
                (h, w)
            };
            let e = roles.entry(role).or_insert((len, lines));
            if e.0 != len {
                return Err(CslError::Unsupported(vec![format!(
                    "fabric collectives along {} of two lengths ({} and {len} PEs); collectives that cross PEs must agree on the PE count along each axis",
                    if role_axis(role) == Axis::Row { "PE rows" } else { "PE columns" },
                    e.0
                )]));
            }
            e.1 = e.1.max(lines);
        }
    }
    plan.fabric_rect = rect;
    for (c, role) in roles.keys().enumerate() {
        let color = c as u8;
        if color > MAX_USER_COLOR {
            return Err(CslError::Unsupported(vec![
                "more than 21 fabric colors needed".into(),
            ]));
        }
        plan.colors.insert(*role, color);
    }
    for (role, (len, lines)) in roles {
        let color = plan.colors[&role];
        let axis = role_axis(role);
        let (fwd, bwd) = if axis == Axis::Row {
            (dir::EAST, dir::WEST)
        } else {
            (dir::SOUTH, dir::NORTH)
        };
        for line in 0..lines {
            for i in 0..len {
                if let Some(r) = route_for(role, i, len, fwd, bwd) {
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

/// The PE axis a role runs along.
pub fn role_axis(role: Role) -> Axis {
    match role {
        Role::ChainA(a) | Role::ChainB(a) | Role::Back(a) | Role::Edge(a) => a,
    }
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
