//! The seeded sentence generator behind the built-in corpus.
//!
//! Sentences follow a small phrase grammar — noun phrase, verb, optional object, prepositional
//! phrases and an adverb — cut to a drawn length of 2–12 words. The grammar keeps word order
//! plausible (so a listener hears sentences, not word salad) while the vocabulary of over 300
//! words keeps the acoustic model from memorising whole utterances. Same seed, same sentences.

use crate::rng::SplitMix64;

// Word lists by part of speech, one string each (split on whitespace).
const DETERMINERS: &str = "THE A THIS THAT EVERY ONE SOME MY YOUR OUR HIS HER THEIR NO";
const ADJECTIVES: &str = "\
    RED GREEN BLUE YELLOW BLACK WHITE BROWN GREY PURPLE ORANGE PINK GOLDEN SILVER BIG SMALL LARGE TINY \
    HUGE LONG SHORT TALL WIDE NARROW DEEP HEAVY LIGHT DARK BRIGHT QUIET LOUD SOFT HARD WARM COLD HOT \
    COOL WET DRY OLD NEW YOUNG FAST SLOW HAPPY SAD ANGRY CALM BRAVE CLEVER KIND GENTLE STRANGE FAMOUS \
    SIMPLE EMPTY FULL CLEAN DIRTY SWEET SOUR FRESH ROUND SHARP SMOOTH ROUGH EARLY LATE HIDDEN BROKEN \
    WOODEN FRIENDLY LUCKY";
const NOUNS: &str = "\
    CAT DOG HORSE BIRD FISH MOUSE RABBIT FOX WOLF BEAR LION TIGER SHEEP GOAT COW DUCK OWL FROG SNAKE BEE \
    MAN WOMAN CHILD BOY GIRL FARMER TEACHER DOCTOR SAILOR SOLDIER KING QUEEN SINGER PAINTER BAKER DRIVER \
    STUDENT NEIGHBOUR FRIEND STRANGER HOUSE GARDEN RIVER MOUNTAIN FOREST FIELD VILLAGE CITY STREET \
    BRIDGE CASTLE TOWER CHURCH MARKET SCHOOL STATION HARBOUR ISLAND LAKE BEACH HILL VALLEY ROAD PATH \
    DOOR WINDOW TABLE CHAIR BED LAMP CLOCK BOOK LETTER PAPER PENCIL BOX BAG BASKET BOTTLE CUP PLATE \
    KNIFE SPOON KEY RING COIN HAT COAT SHOE GLOVE BOAT SHIP TRAIN CAR WAGON BICYCLE APPLE BREAD CHEESE \
    CAKE SOUP EGG MILK WATER TEA COFFEE FLOWER TREE LEAF STONE SAND SNOW RAIN WIND STORM CLOUD SUN MOON \
    STAR FIRE SMOKE SONG STORY PICTURE MAP GAME BALL DRUM BELL PIANO VIOLIN LADDER ROPE WHEEL CANDLE \
    MIRROR BLANKET PILLOW FEATHER";
const NAMES: &str = "\
    ANNA BEN CLARA DAVID EMMA FRANK GRACE HENRY ISABEL JACK KATE LUCY MARTIN NORA OLIVER PETER ROSE SAM \
    THOMAS VICTOR";
const VERBS: &str = "\
    SAW FOUND CARRIED OPENED CLOSED PAINTED BUILT BROKE FIXED CLEANED WATCHED FOLLOWED CALLED HELPED \
    PUSHED PULLED DROPPED LIFTED THREW CAUGHT BOUGHT SOLD BROUGHT TOOK GAVE LEFT KEPT HID LOST WANTED \
    LIKED LOVED HATED REMEMBERED FORGOT NEEDED TOUCHED SMELLED HEARD COUNTED SHARED CHASED VISITED \
    CROSSED CLIMBED FILLED EMPTIED WASHED COOKED ATE DRANK READ WROTE SANG PLAYED DREW MOVED TURNED \
    SHOOK RANG";
const INTRANSITIVE: &str = "\
    SLEPT WAITED LAUGHED CRIED SMILED WALKED RAN JUMPED DANCED SWAM FLEW ARRIVED STAYED RESTED SHOUTED \
    WHISPERED LISTENED WORKED TRAVELLED RETURNED";
const PREPOSITIONS: &str = "\
    IN ON UNDER OVER NEAR BEHIND BESIDE BETWEEN ACROSS THROUGH AROUND INTO FROM WITH WITHOUT TOWARDS \
    ALONG AFTER BEFORE AT";
const ADVERBS: &str = "\
    SLOWLY QUICKLY QUIETLY LOUDLY CAREFULLY GENTLY SUDDENLY TODAY YESTERDAY TONIGHT AGAIN ALWAYS NEVER \
    OFTEN SOMETIMES TOGETHER ALONE EARLY LATER SOON OUTSIDE INSIDE HAPPILY SADLY ALMOST NOW THEN HERE \
    THERE TWICE";
const NUMBERS: &str = "TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN TWELVE TWENTY MANY FEW";
const PRONOUNS: &str = "I YOU HE SHE WE THEY IT NOBODY EVERYONE SOMEBODY";
const CONNECTIVES: &str = "AND BUT BECAUSE WHILE WHEN SO DON'T COULDN'T WOULDN'T IT'S";

/// Every word the generator can produce, in a stable order (for the vocabulary-size check).
pub fn vocabulary() -> Vec<&'static str> {
    let lists = [
        DETERMINERS,
        ADJECTIVES,
        NOUNS,
        NAMES,
        VERBS,
        INTRANSITIVE,
        PREPOSITIONS,
        ADVERBS,
        NUMBERS,
        PRONOUNS,
        CONNECTIVES,
    ];
    let mut words: Vec<&str> = lists.iter().flat_map(|list| list.split_whitespace()).collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Shortest and longest sentences in words.
pub const MIN_WORDS: usize = 2;
pub const MAX_WORDS: usize = 12;

/// Draws sentences from the grammar.
pub struct SentenceGenerator {
    rng: SplitMix64,
}

impl SentenceGenerator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::derive(seed, "sentences"),
        }
    }

    /// One sentence of `MIN_WORDS..=MAX_WORDS` words, upper case, single spaces.
    ///
    /// Clauses are added until the sentence reaches a drawn target length; a sentence that
    /// overshoots `MAX_WORDS` is redrawn, so no sentence ends in a cut-off phrase.
    pub fn sentence(&mut self) -> String {
        loop {
            let target = self.rng.range_inclusive(MIN_WORDS, MAX_WORDS);
            let mut words: Vec<&str> = Vec::with_capacity(2 * MAX_WORDS);
            while words.len() < target {
                if !words.is_empty() {
                    words.push(self.pick(CONNECTIVES));
                }
                self.clause(&mut words);
            }
            if words.len() <= MAX_WORDS {
                return words.join(" ");
            }
        }
    }

    /// One word of a whitespace-separated list, uniformly.
    fn pick(&mut self, list: &'static str) -> &'static str {
        let words: Vec<&'static str> = list.split_whitespace().collect();
        *self.rng.choose(&words)
    }

    fn clause(&mut self, words: &mut Vec<&'static str>) {
        self.subject(words);
        if self.rng.below(3) == 0 {
            words.push(self.pick(INTRANSITIVE));
        } else {
            words.push(self.pick(VERBS));
            self.noun_phrase(words);
        }
        while self.rng.below(3) == 0 {
            words.push(self.pick(PREPOSITIONS));
            self.noun_phrase(words);
        }
        if self.rng.below(3) == 0 {
            words.push(self.pick(ADVERBS));
        }
    }

    fn subject(&mut self, words: &mut Vec<&'static str>) {
        match self.rng.below(4) {
            0 => words.push(self.pick(PRONOUNS)),
            1 => words.push(self.pick(NAMES)),
            _ => self.noun_phrase(words),
        }
    }

    fn noun_phrase(&mut self, words: &mut Vec<&'static str>) {
        match self.rng.below(6) {
            0 => return words.push(self.pick(NAMES)),
            1 => words.push(self.pick(NUMBERS)),
            _ => words.push(self.pick(DETERMINERS)),
        }
        if self.rng.below(2) == 0 {
            words.push(self.pick(ADJECTIVES));
        }
        words.push(self.pick(NOUNS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_has_at_least_300_words_all_tokenizable() {
        let vocab = vocabulary();
        assert!(vocab.len() >= 300, "{} words", vocab.len());
        let tokenizer = crate::text::CharTokenizer;
        assert!(vocab.iter().all(|w| tokenizer.encode(w).is_ok()));
    }

    #[test]
    fn sentences_have_2_to_12_words_and_are_reproducible() {
        let mut a = SentenceGenerator::new(42);
        let mut b = SentenceGenerator::new(42);
        let mut lengths = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let s = a.sentence();
            assert_eq!(s, b.sentence());
            let n = s.split(' ').count();
            assert!((MIN_WORDS..=MAX_WORDS).contains(&n), "{s}");
            lengths.insert(n);
        }
        assert_eq!(lengths.len(), MAX_WORDS - MIN_WORDS + 1, "every length occurs");
        assert_ne!(
            SentenceGenerator::new(1).sentence(),
            SentenceGenerator::new(2).sentence()
        );
    }
}
