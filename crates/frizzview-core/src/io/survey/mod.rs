//! Survey tables that describe visits rather than hold them: allVisit rows and apStar visit lists
//! (per-visit velocities, [`survey_rv`]; the rows a fetch needs, [`allvisit`]) and APOGEE file-name
//! parsing ([`apogee_names`]).

pub mod allvisit;
pub mod apogee_names;
pub mod survey_rv;
