//! Relationships: parents, children, one-to-one and many-to-many loads in one statement per
//! level, and attaching or detaching join rows (through the write path).

use super::*;

impl Session {
    /// The parent a child points at (`None` when its foreign key is `NULL` or the parent is gone).
    #[track_caller]
    pub fn parent<C, P>(&mut self, child: &C) -> Result<Option<P>>
    where
        C: BelongsTo<P>,
        P: Entity,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&P::META), "parent", caller, |this| {
            match child.parent_key() {
                Some(key) => this.find::<P>(&key),
                None => Ok(None),
            }
        })
    }

    /// The parents of many children, in the children's order, in one statement.
    #[track_caller]
    pub fn parents<C, P>(&mut self, children: &[C]) -> Result<Vec<Option<P>>>
    where
        C: BelongsTo<P>,
        P: Entity + Clone,
        P::Key: Eq + Hash,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&P::META), "parents", caller, |this| {
            let mut keys: Vec<P::Key> = children.iter().filter_map(|c| c.parent_key()).collect();
            dedup(&mut keys);
            let found: HashMap<P::Key, P> = this
                .get_many::<P>(&keys)?
                .into_iter()
                .map(|p| (p.key(), p))
                .collect();
            Ok(children
                .iter()
                .map(|c| c.parent_key().and_then(|k| found.get(&k).cloned()))
                .collect())
        })
    }

    /// The children of each parent (`has_many`), in the parents' order, in one statement per
    /// 30 000 parents: loading 100 parents with their children takes two queries, not 101.
    #[track_caller]
    pub fn children<P, C>(&mut self, parents: &[P]) -> Result<Vec<Vec<C>>>
    where
        P: Entity,
        C: BelongsTo<P>,
        P::Key: Eq + Hash,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&C::META), "children", caller, |this| {
            this.authorize::<C>(Action::Read, None)?;
            let mut keys: Vec<P::Key> = parents.iter().map(Entity::key).collect();
            dedup(&mut keys);
            let mut by_parent: HashMap<P::Key, Vec<C>> = HashMap::new();
            for chunk in keys.chunks(this.db.backend.max_bind_params().max(1)) {
                let loaded = this.run(|c| C::raw_children_of(c, chunk))?;
                for child in this.visible_all(loaded)? {
                    if let Some(k) = child.parent_key() {
                        by_parent.entry(k).or_default().push(child);
                    }
                }
            }
            Ok(parents
                .iter()
                .map(|p| by_parent.remove(&p.key()).unwrap_or_default())
                .collect())
        })
    }

    /// The one child of a parent (`has_one`), if any.
    #[track_caller]
    pub fn child<P, C>(&mut self, parent: &P) -> Result<Option<C>>
    where
        P: Entity,
        C: BelongsTo<P>,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&C::META), "child", caller, |this| {
            this.authorize::<C>(Action::Read, None)?;
            let key = parent.key();
            let loaded = this.run(|c| C::raw_children_of(c, std::slice::from_ref(&key)))?;
            Ok(this.visible_all(loaded)?.into_iter().next())
        })
    }

    /// Many-to-many: for each left entity, the right entities linked to it through join
    /// entity `J` (which belongs to both). Two statements in all.
    #[track_caller]
    pub fn related<L, J, R>(&mut self, lefts: &[L]) -> Result<Vec<Vec<R>>>
    where
        L: Entity,
        J: BelongsTo<L> + BelongsTo<R>,
        R: Entity + Clone,
        L::Key: Eq + Hash,
        R::Key: Eq + Hash,
    {
        let caller = std::panic::Location::caller();
        self.observed(Some(&R::META), "related", caller, |this| {
            let links: Vec<Vec<J>> = this.children::<L, J>(lefts)?;
            let mut right_keys: Vec<R::Key> = links
                .iter()
                .flatten()
                .filter_map(<J as BelongsTo<R>>::parent_key)
                .collect();
            dedup(&mut right_keys);
            let rights: HashMap<R::Key, R> = this
                .get_many::<R>(&right_keys)?
                .into_iter()
                .map(|r| (r.key(), r))
                .collect();
            Ok(links
                .iter()
                .map(|ls| {
                    ls.iter()
                        .filter_map(|j| <J as BelongsTo<R>>::parent_key(j))
                        .filter_map(|k| rights.get(&k).cloned())
                        .collect()
                })
                .collect())
        })
    }

    /// Links two entities through join entity `J` (an insert of `J` on the write path).
    pub fn attach<J: Entity>(&mut self, link: J) -> Result<J> {
        self.insert(link)
    }

    /// Removes a many-to-many link (a hard delete of `J` on the write path).
    pub fn detach<J: Entity>(&mut self, link: &J) -> Result<()> {
        self.purge(link)
    }
}
