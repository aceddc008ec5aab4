// make-example-tasks.ts: writes examples/tasks/, the small example task set `pajama eval` runs on when no
// --data is given (and the demo's eval stage). The questions are the project's own writing, not the real
// benchmarks; each task has the columns of its published data set on the Hugging Face hub, so the same code
// reads both. arc_challenge and mmlu are written as Parquet (with hyparquet-writer: nested struct and list
// columns, INT64 answers, as the hub's files have them), hellaswag and truthfulqa_mc2 as JSON Lines.
//
// The output is deterministic (same input, same bytes), and the files are committed; rerun this after
// editing the questions:  npx ts-node --transpile-only scripts/make-example-tasks.ts [OUT_DIR]
// (OUT_DIR defaults to examples/tasks). test/eval/task-files.test.ts checks the committed files against it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';

type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]['schema']>[number];

// ---- arc_challenge: allenai/ai2_arc, ARC-Challenge: id, question, choices {text[], label[]}, answerKey ----

/** [question, choices, index of the answer]; labels A, B, C, ... unless `numeric` (some ARC rows use 1, 2, 3, 4). */
type ArcItem = [string, string[], number, ('numeric' | undefined)?];

const ARC_TEST: ArcItem[] = [
  ['Which part of a plant takes in most of the water the plant needs?', ['the flowers', 'the roots', 'the leaves', 'the seeds'], 1],
  ['A student leaves a glass of ice water on a table in a warm room. Drops of water form on the outside of the glass. Where does this water come from?', ['water leaking through the glass', 'water vapor in the air', 'melted ice from inside the glass', 'the table top'], 1],
  ['Which of these is a renewable source of energy?', ['coal', 'natural gas', 'wind', 'oil'], 2],
  ['What causes the seasons on Earth?', ["the tilt of Earth's axis", "the distance between Earth and the Moon", 'the speed of Earth’s rotation', 'the number of clouds in the sky'], 0],
  ['A ball is rolled across a carpet and then across a wooden floor with the same push. It rolls farther on the wooden floor. Why?', ['the wooden floor has less friction', 'the ball is lighter on wood', 'the carpet has less friction', 'gravity is weaker over wood'], 0],
  ['Which tool is best for measuring the mass of a rock?', ['a thermometer', 'a graduated cylinder', 'a balance', 'a meter stick'], 2],
  ['Which of these organisms makes its own food?', ['a mushroom', 'a grass plant', 'a rabbit', 'a hawk'], 1],
  ['Sound travels fastest through which of these?', ['air', 'a vacuum', 'steel', 'water vapor'], 2],
  ['A farmer plants the same crop in a field every year and the yield slowly drops. What most likely causes this?', ['the soil loses nutrients', 'the Sun gets weaker', 'the seeds get heavier', 'the rain gets cleaner'], 0],
  ['Which property of a mineral is tested by scratching it on a glass plate?', ['color', 'hardness', 'luster', 'magnetism'], 1],
  ['What happens to most metals when they are heated?', ['they expand', 'they contract', 'they become magnetic', 'they lose mass'], 0],
  ['Which is the best evidence that a chemical change has happened?', ['a liquid is poured into a new cup', 'ice melts into water', 'a new gas is given off', 'paper is cut into pieces'], 2],
  ['Which layer of Earth is made mostly of liquid iron and nickel?', ['the crust', 'the mantle', 'the outer core', 'the atmosphere'], 2],
  ['A student wants to know whether plants grow taller with more light. Which should stay the same for every plant?', ['the amount of light', 'the amount of water', 'the height of the plants', 'the number of days measured'], 1],
  ['Which form of energy does a battery store?', ['chemical energy', 'sound energy', 'nuclear energy', 'light energy'], 0],
  ['Why does the Moon appear to change shape during a month?', ['clouds cover parts of it', 'Earth’s shadow falls on it every night', 'we see different parts of its lit half', 'it grows and shrinks'], 2],
  ['Which animal adaptation helps it survive cold winters?', ['thin fur', 'thick layers of fat', 'large ears', 'bright colors'], 1],
  ['What is the main job of red blood cells?', ['fighting germs', 'carrying oxygen', 'making hormones', 'digesting food'], 1],
  ['Which change would most likely increase erosion on a hillside?', ['planting trees', 'building terraces', 'removing the grass cover', 'adding mulch'], 2],
  ['An object has a mass of 10 kg on Earth. What is its mass on the Moon?', ['0 kg', 'about 1.6 kg', '10 kg', '60 kg'], 2],
  ['Which of these is a mixture rather than a pure substance?', ['salt water', 'oxygen gas', 'pure gold', 'distilled water'], 0],
  ['Which process turns liquid water into water vapor?', ['condensation', 'evaporation', 'freezing', 'precipitation'], 1],
  ['A circuit has a battery, a switch and a bulb. The bulb does not light when the switch is closed. What is the most likely cause?', ['the wires are too short', 'the bulb is burned out', 'the switch is closed', 'the battery is too new'], 1],
  ['Which of these describes a trait that is inherited?', ['a scar on a knee', 'the ability to ride a bike', 'the color of a person’s eyes', 'short hair from a haircut'], 2],
  ['Fossils of sea shells are found on top of a mountain. What does this suggest?', ['the rocks were once under water', 'birds carried the shells there', 'the shells grew on the mountain', 'the mountain is made of ice'], 0],
  ['Which unit is used to measure electric current?', ['volt', 'ampere', 'watt', 'ohm'], 1, 'numeric'],
  ['Which planet is closest to the Sun?', ['Venus', 'Earth', 'Mercury', 'Mars'], 2, 'numeric'],
  ['What do decomposers such as bacteria do in an ecosystem?', ['they make food from sunlight', 'they break down dead matter and return nutrients to the soil', 'they hunt large animals', 'they pollinate flowers'], 1, 'numeric'],
  ['Which of these is the best conductor of heat?', ['a wooden spoon', 'a plastic cup', 'a copper pan', 'a wool glove', 'a paper plate'], 2],
  ['Which is an example of a physical change?', ['wood burning', 'iron rusting', 'glass breaking', 'bread baking'], 2],
];

const ARC_TRAIN: ArcItem[] = [
  ['Which of these is a source of light?', ['a mirror', 'the Moon', 'a candle flame', 'a window'], 2],
  ['What gas do plants take in from the air to make food?', ['oxygen', 'nitrogen', 'carbon dioxide', 'helium'], 2],
  ['Which state of matter has a fixed shape and a fixed volume?', ['solid', 'liquid', 'gas', 'plasma'], 0],
  ['What force pulls objects toward the center of Earth?', ['magnetism', 'friction', 'gravity', 'buoyancy'], 2],
  ['Which body system breaks food into nutrients?', ['the nervous system', 'the digestive system', 'the skeletal system', 'the respiratory system'], 1],
  ['Which of these is a fossil fuel?', ['sunlight', 'coal', 'wind', 'wood'], 1],
  ['What is the boiling point of pure water at sea level?', ['0 degrees Celsius', '50 degrees Celsius', '100 degrees Celsius', '212 degrees Celsius'], 2],
  ['Which tool would a scientist use to look at cells?', ['a telescope', 'a microscope', 'a barometer', 'a compass'], 1],
  ['How long does it take Earth to orbit the Sun once?', ['one day', 'one month', 'one year', 'one week'], 2],
  ['Which of these animals is a mammal?', ['a shark', 'a frog', 'a whale', 'a lizard'], 2],
  ['What happens to water when it freezes?', ['it becomes a gas', 'it becomes a solid', 'it loses all its mass', 'it becomes warmer'], 1],
  ['Which rock forms when lava cools?', ['igneous rock', 'sedimentary rock', 'metamorphic rock', 'limestone'], 0],
  ['Which of these materials is attracted to a magnet?', ['a copper coin', 'an iron nail', 'a glass marble', 'a rubber band'], 1],
  ['Which organ pumps blood through the body?', ['the lungs', 'the stomach', 'the heart', 'the brain'], 2],
  ['What is the main source of energy for most food chains on Earth?', ['the Sun', 'the soil', 'the ocean', 'the wind'], 0],
  ['Which kind of simple machine is a ramp?', ['a lever', 'a pulley', 'an inclined plane', 'a wheel and axle'], 2],
  ['A student pushes a box and it does not move. Which force balances the push?', ['gravity', 'static friction', 'magnetism', 'air pressure'], 1],
  ['Why do we see lightning before we hear thunder?', ['light travels faster than sound', 'sound travels faster than light', 'thunder happens later', 'our eyes are closer to the storm'], 0],
  ['What do the rings of a tree trunk usually show?', ['the tree’s age', 'the tree’s height', 'the number of its leaves', 'the amount of rain last week'], 0],
  ['Which of these is a producer in a pond ecosystem?', ['algae', 'a fish', 'a duck', 'a snail'], 0],
  ['Which layer of the atmosphere do we live in?', ['the stratosphere', 'the troposphere', 'the mesosphere', 'the thermosphere'], 1],
  ['What is formed when two or more atoms join together?', ['a cell', 'a molecule', 'a mineral', 'a magnet'], 1],
  ['Which type of energy does a moving car have?', ['kinetic energy', 'elastic energy', 'nuclear energy', 'sound energy only'], 0],
  ['Which planet is known for its large rings?', ['Mars', 'Saturn', 'Venus', 'Mercury'], 1, 'numeric'],
  ['Which part of the cell holds its genetic material?', ['the cell wall', 'the nucleus', 'the cytoplasm', 'the membrane'], 1, 'numeric'],
  ['What is the process by which a caterpillar becomes a butterfly?', ['photosynthesis', 'metamorphosis', 'pollination', 'germination'], 1],
  ['Which resource is the most difficult to replace once it is used?', ['trees', 'fresh air', 'oil', 'crops'], 2],
  ['Which happens when a light ray passes from air into water?', ['it bends', 'it stops', 'it gets louder', 'it turns into heat only'], 0],
  ['Which is the smallest unit of an element that keeps its properties?', ['a molecule', 'a compound', 'an atom', 'a crystal', 'a cell'], 2],
  ['What does a thermometer measure?', ['air pressure', 'temperature', 'wind speed', 'humidity'], 1],
];

function arcRows(items: ArcItem[], prefix: string): Record<string, unknown>[] {
  return items.map(([question, text, answer, numeric], i) => {
    const label = text.map((_, k) => (numeric ? String(k + 1) : String.fromCharCode(65 + k)));
    return { id: `${prefix}_${String(i + 1).padStart(3, '0')}`, question, choices: { text, label }, answerKey: label[answer] };
  });
}

// ---- hellaswag: Rowan/hellaswag: ind, activity_label, ctx_a, ctx_b, ctx, endings[4], source_id, split, split_type, label ----

/** [activity_label, ctx_a, ctx_b, endings, index of the right ending]. WikiHow-style rows keep the data set's bracketed headers. */
type HellaItem = [string, string, string, string[], number];

const HELLA_VALIDATION: HellaItem[] = [
  ['Making a sandwich', 'A man places two slices of bread on a cutting board.', 'he', ['spreads butter on one slice and adds cheese and ham.', 'throws the bread into the swimming pool.', 'paints the cutting board bright red.', 'climbs onto the roof with a ladder.'], 0],
  ['Washing a car', 'A woman fills a bucket with soapy water next to a car.', 'she', ['drives the bucket to the grocery store.', 'scrubs the hood of the car with a sponge.', 'reads a newspaper to the bucket.', 'plants flowers inside the car.'], 1],
  ['Playing guitar', 'A boy sits on a stool holding an acoustic guitar.', 'he', ['eats the strings one by one.', 'puts the guitar in the oven.', 'strums a few chords and begins to sing.', 'throws the stool across the room.'], 2],
  ['Walking the dog', 'A girl clips a leash to her dog’s collar at the front door.', 'they', ['walk down the sidewalk toward the park.', 'fly over the houses together.', 'sit in the bathtub all afternoon.', 'paint the door with the leash.'], 0],
  ['Cleaning windows', 'A man sprays a window with cleaner.', 'he', ['waters the window with a garden hose for an hour.', 'wipes the glass with a cloth until it shines.', 'kicks the window frame loudly.', 'sings to the spray bottle.'], 1],
  ['Shoveling snow', 'Snow covers the driveway in front of a house. A woman in a heavy coat walks out with a shovel.', 'she', ['lies down and falls asleep on the snow.', 'uses the shovel as an umbrella.', 'pushes the snow to the side of the driveway.', 'carries the driveway into the garage.'], 2],
  ['Baking cookies', 'A child stirs flour and sugar in a large bowl.', 'the child', ['adds eggs and butter and keeps mixing the dough.', 'pours the bowl into the fish tank.', 'puts the bowl on a shelf and leaves forever.', 'hits the bowl with a tennis racket.'], 0],
  ['Tying shoes', 'A man sits on the stairs and pulls on his running shoes.', 'he', ['cuts the laces with scissors and runs.', 'crosses the laces and ties them in a bow.', 'puts the shoes on his hands.', 'throws the shoes out of the window.'], 1],
  ['Brushing teeth', 'A woman squeezes toothpaste onto a toothbrush at the sink.', 'she', ['brushes the dog’s fur with it.', 'puts the toothbrush in the freezer.', 'brushes her teeth and rinses her mouth.', 'paints the mirror with the toothpaste.'], 2],
  ['Kayaking', 'Two people push a kayak from the beach into calm water.', 'they', ['climb in and paddle away from the shore.', 'bury the kayak in the sand.', 'fill the kayak with rocks and leave.', 'carry the kayak up a tree.'], 0],
  ['Raking leaves', 'Brown leaves cover a lawn. A boy holds a rake.', 'the boy', ['rakes the leaves into a large pile.', 'glues the leaves back onto the tree.', 'throws the rake into the pond.', 'eats the leaves for lunch.'], 0],
  ['Ironing clothes', 'A man lays a wrinkled shirt flat on an ironing board.', 'he', ['puts the iron in the refrigerator.', 'presses the hot iron slowly over the shirt.', 'folds the ironing board into the shirt.', 'waters the shirt with a garden hose.'], 1],
  ['Painting a fence', 'A girl dips a wide brush into a can of white paint.', 'she', ['drinks from the paint can.', 'paints her shoes and walks home.', 'brushes the paint along the wooden boards of the fence.', 'buries the can in the garden.'], 2],
  ['Home and Garden', '[header] How to water a houseplant [title] Check the soil first. [step] Push a finger into the soil up to the first knuckle.', 'if', ['the soil feels dry, the plant needs water.', 'the plant is green, paint it blue.', 'the pot is heavy, throw it away.', 'the window is open, close your eyes.'], 0],
  ['Food and Entertaining', '[header] How to boil an egg [title] Place the egg in a small pot. [step] Cover the egg with cold water.', 'then', ['put the pot in the freezer overnight.', 'bring the water to a boil on the stove.', 'pour the water on the floor.', 'crack the egg into your shoe.'], 1],
  ['Personal Care and Style', '[header] How to wash your hands [title] Wet your hands with clean water. [step] Turn off the tap.', 'next', ['dry your hands on the dog.', 'wear gloves and skip the soap.', 'apply soap and rub your hands together for twenty seconds.', 'put your hands in the sand.'], 2],
  ['Cars and Other Vehicles', '[header] How to check a tire [title] Find the recommended pressure. [step] It is printed on a sticker inside the driver’s door.', 'use', ['a pressure gauge on the tire’s valve to read its pressure.', 'the sticker as a bookmark.', 'a spoon to taste the tire.', 'the radio to call the tire.'], 0],
  ['Running a marathon', 'Runners gather at a starting line on a city street. A horn sounds.', 'the runners', ['sit down and order breakfast.', 'start running down the street.', 'turn around and go to sleep.', 'swim across the street.'], 1],
  ['Mowing the lawn', 'A man pulls the cord of a lawn mower and the engine starts.', 'he', ['pushes the mower across the grass in straight rows.', 'puts the mower on the roof.', 'feeds the mower a sandwich.', 'plays the mower like a drum.'], 0],
  ['Education and Communications', '[header] How to write a letter [title] Write the date at the top. [step] Add a greeting below it.', 'then', ['write the body of the letter in short paragraphs.', 'tear the paper into small pieces.', 'mail the blank envelope.', 'throw the pen at the greeting.'], 0],
];

const HELLA_TRAIN: HellaItem[] = [
  ['Making tea', 'A woman fills a kettle with water and sets it on the stove.', 'when it boils, she', ['pours the water over a tea bag in a cup.', 'pours the water into her shoes.', 'puts the kettle in the bathtub.', 'throws the cup at the stove.'], 0],
  ['Riding a bike', 'A boy puts on a helmet and climbs onto his bicycle.', 'he', ['pedals down the quiet street.', 'rides the bicycle into the kitchen sink.', 'takes the wheels off and eats them.', 'sleeps on the handlebars.'], 0],
  ['Folding laundry', 'A pile of clean towels lies on a bed.', 'a man', ['folds each towel and stacks them neatly.', 'throws the towels into the mud.', 'sets the towels on fire.', 'hangs the bed on the wall.'], 0],
  ['Planting a tree', 'A girl digs a deep hole in the yard with a spade.', 'she', ['fills it with soda and walks away.', 'sets a young tree in the hole and fills in the soil.', 'jumps into the hole and hides.', 'covers it with a carpet.'], 1],
  ['Swimming', 'A swimmer stands on the edge of a pool in goggles.', 'she', ['dives into the water and swims a lap.', 'drains the pool with a straw.', 'paints the water yellow.', 'reads the goggles aloud.'], 0],
  ['Doing dishes', 'A stack of dirty plates sits next to a sink full of hot water.', 'a man', ['washes each plate with a sponge and rinses it.', 'buries the plates in the yard.', 'stacks the plates on the cat.', 'puts the sink in the oven.'], 0],
  ['Playing basketball', 'A player dribbles the ball toward the hoop.', 'he', ['jumps and shoots the ball through the hoop.', 'puts the ball in his backpack and goes to school.', 'rolls the ball into a lake.', 'sits on the ball and reads.'], 0],
  ['Chopping vegetables', 'A cook places carrots on a cutting board and picks up a knife.', 'she', ['slices the carrots into thin rounds.', 'plants the knife in the garden.', 'sings to the carrots and leaves.', 'throws the board into the sink.'], 0],
  ['Putting up a tent', 'Two campers unroll a tent on flat ground.', 'they', ['push the poles through the sleeves and raise the tent.', 'fold the tent into a paper plane.', 'bury the poles under a rock.', 'carry the tent into a car wash.'], 0],
  ['Sweeping the floor', 'Crumbs are scattered across a kitchen floor. A boy takes a broom.', 'he', ['sweeps the crumbs into a dustpan.', 'throws the broom into the oven.', 'sprinkles more crumbs on the table.', 'rides the broom out of the door.'], 0],
  ['Home and Garden', '[header] How to hang a picture [title] Choose the spot on the wall. [step] Mark it lightly with a pencil.', 'then', ['hammer a nail into the mark and hang the picture.', 'paint over the whole wall in black.', 'put the picture in the freezer.', 'glue the pencil to the ceiling.'], 0],
  ['Food and Entertaining', '[header] How to make toast [title] Put a slice of bread in the toaster. [step] Push the lever down.', 'when', ['the toast pops up, spread butter on it.', 'the toaster is cold, put it in the bath.', 'the bread is white, color it green.', 'the lever moves, call a plumber.'], 0],
  ['Pets and Animals', '[header] How to feed a cat [title] Choose a quiet place for the bowl. [step] Fill the bowl with the right amount of food.', 'also', ['keep a bowl of fresh water next to it.', 'fill the bowl with sand.', 'hide the bowl on the roof.', 'give the cat coffee.'], 0],
  ['Climbing a wall', 'A climber ties a rope to her harness at the foot of an indoor wall.', 'she', ['grabs the first hold and starts to climb.', 'unties the rope and swims away.', 'paints the holds with jam.', 'sits on the floor and knits the rope.'], 0],
  ['Skateboarding', 'A teenager sets a skateboard on a smooth path.', 'he', ['steps on and pushes off with one foot.', 'carries the path into his house.', 'throws the skateboard into a tree.', 'puts the skateboard in the washing machine.'], 0],
  ['Vacuuming', 'A woman plugs in a vacuum cleaner in the living room.', 'she', ['runs it back and forth over the rug.', 'vacuums the fish tank.', 'sits inside the vacuum cleaner.', 'plants the cord in a pot.'], 0],
  ['Playing the piano', 'A girl sits at a piano and opens a book of music.', 'she', ['plays the first notes of a song.', 'tears the piano keys out one by one.', 'puts the book under the piano leg and leaves.', 'sings to the bench.'], 0],
  ['Personal Care and Style', '[header] How to comb wet hair [title] Use a wide-toothed comb. [step] Start at the ends of the hair.', 'then', ['work upward toward the roots a little at a time.', 'comb the towel instead.', 'cut the comb in half.', 'put the comb in the soup.'], 0],
  ['Fishing', 'A man casts a fishing line into a lake from a small boat.', 'he', ['waits quietly for a fish to bite.', 'jumps in and pulls the lake into the boat.', 'throws the rod at the clouds.', 'paints the boat while it sinks.'], 0],
  ['Jump rope', 'Two girls turn a long rope while a third girl watches.', 'the third girl', ['runs in and begins to jump.', 'ties the rope to the moon.', 'rolls the rope into a sandwich.', 'climbs the rope into the sky.'], 0],
];

function hellaRows(items: HellaItem[], split: 'train' | 'val', start: number): Record<string, unknown>[] {
  return items.map(([activity_label, ctx_a, ctx_b, written, answer], i) => {
    // The right ending moves to position i % 4, so the labels are spread over 0..3.
    const endings = written.filter((_, k) => k !== answer);
    const label = i % 4;
    endings.splice(label, 0, written[answer]);
    const wikihow = ctx_a.startsWith('[header]');
    return {
      ind: start + i,
      activity_label,
      ctx_a,
      ctx_b,
      ctx: `${ctx_a} ${ctx_b}`,
      endings,
      source_id: wikihow ? `pajama-wikihow~${start + i}` : `pajama-activity~${start + i}`,
      split,
      split_type: wikihow ? 'indomain' : 'zeroshot',
      label: String(label),
    };
  });
}

// ---- mmlu: cais/mmlu, all/: question, subject, choices[4], answer (int64 index) ----

/** [question, choices, index of the answer] */
type McItem = [string, string[], number];

const MMLU: Record<string, { dev: McItem[]; test: McItem[] }> = {
  astronomy: {
    dev: [
      ['What is the closest star to Earth?', ['Proxima Centauri', 'the Sun', 'Sirius', 'Polaris'], 1],
      ['Which planet has the shortest year?', ['Mercury', 'Venus', 'Mars', 'Neptune'], 0],
      ['What is a light-year a unit of?', ['time', 'brightness', 'distance', 'mass'], 2],
      ['Which force keeps the planets in orbit around the Sun?', ['magnetism', 'gravity', 'friction', 'the strong nuclear force'], 1],
      ['What is the name of the galaxy that contains the Solar System?', ['Andromeda', 'the Milky Way', 'the Large Magellanic Cloud', 'Triangulum'], 1],
    ],
    test: [
      ['Which planet is the largest in the Solar System?', ['Saturn', 'Earth', 'Jupiter', 'Neptune'], 2],
      ['What causes a solar eclipse?', ['Earth passes between the Sun and the Moon', 'the Moon passes between the Sun and Earth', 'the Sun passes behind Jupiter', 'clouds cover the Sun'], 1],
      ['Which of these is a dwarf planet?', ['Pluto', 'Mars', 'Titan', 'Ganymede'], 0],
      ['What gas makes up most of the Sun?', ['oxygen', 'carbon', 'hydrogen', 'nitrogen'], 2],
      ['How long does light from the Sun take to reach Earth, roughly?', ['8 seconds', '8 minutes', '8 hours', '8 days'], 1],
      ['What is the main reason Venus is the hottest planet?', ['it is closest to the Sun', 'its thick carbon dioxide atmosphere traps heat', 'it has active volcanoes everywhere', 'it spins very fast'], 1],
      ['Which object is at the center of most large galaxies?', ['a white dwarf', 'a supermassive black hole', 'a neutron star', 'a comet cloud'], 1],
      ['What is the phase of the Moon when its lit side faces away from Earth?', ['full moon', 'first quarter', 'new moon', 'waning gibbous'], 2],
    ],
  },
  computer_security: {
    dev: [
      ['What does a firewall mainly do?', ['filters network traffic by rules', 'speeds up the processor', 'stores passwords', 'compresses files'], 0],
      ['Which of these is the strongest password?', ['password123', 'qwerty', 'a long random passphrase of unrelated words', 'your birth date'], 2],
      ['What is phishing?', ['a way to cool servers', 'tricking people into giving away secrets with fake messages', 'a compression method', 'a type of firewall'], 1],
      ['What does encryption protect?', ['the confidentiality of data', 'the speed of a network', 'the size of a file', 'the color of a screen'], 0],
      ['What is two-factor authentication?', ['using two passwords that are the same', 'proving identity with two different kinds of evidence', 'logging in twice a day', 'sharing an account with a friend'], 1],
    ],
    test: [
      ['Why should passwords be stored as salted hashes?', ['so they can be read back quickly', 'so a stolen database does not reveal them directly', 'to make them shorter', 'to share them with users'], 1],
      ['What is malware?', ['software written to harm or exploit a system', 'a faulty keyboard', 'a slow network cable', 'a backup tool'], 0],
      ['What does HTTPS add to HTTP?', ['faster pages', 'an encrypted and authenticated connection', 'larger images', 'automatic translation'], 1],
      ['Which practice limits the damage of a compromised account?', ['giving every account administrator rights', 'the principle of least privilege', 'reusing one password everywhere', 'disabling updates'], 1],
      ['What is a software patch usually for?', ['fixing bugs or security holes', 'changing the desktop picture', 'deleting user files', 'slowing down attackers’ computers'], 0],
      ['What is a denial-of-service attack?', ['reading private messages', 'flooding a service so legitimate users cannot reach it', 'guessing a password', 'copying a website’s design'], 1],
      ['Why are software updates important for security?', ['they fix known vulnerabilities', 'they make screens brighter', 'they remove the need for passwords', 'they disable the firewall'], 0],
      ['What is a backup most useful against?', ['losing data to ransomware or disk failure', 'slow typing', 'bright screens', 'spam filters'], 0],
    ],
  },
  elementary_mathematics: {
    dev: [
      ['What is 7 + 8?', ['14', '15', '16', '17'], 1],
      ['What is 6 x 7?', ['36', '42', '48', '49'], 1],
      ['What is half of 50?', ['20', '25', '30', '100'], 1],
      ['Which number is even?', ['7', '13', '18', '21'], 2],
      ['What is 100 - 37?', ['63', '73', '67', '53'], 0],
    ],
    test: [
      ['What is 9 x 8?', ['64', '72', '81', '78'], 1],
      ['What is 144 divided by 12?', ['11', '12', '13', '14'], 1],
      ['What is 3/4 written as a decimal?', ['0.34', '0.75', '0.43', '0.7'], 1],
      ['A rectangle is 5 cm long and 3 cm wide. What is its area?', ['8 square cm', '15 square cm', '16 square cm', '30 square cm'], 1],
      ['What is 25% of 80?', ['20', '25', '40', '60'], 0],
      ['Which number is prime?', ['9', '15', '17', '21'], 2],
      ['What is the perimeter of a square with sides of 6 m?', ['12 m', '24 m', '36 m', '30 m'], 1],
      ['What is 2 to the power of 5?', ['10', '25', '32', '64'], 2],
    ],
  },
  high_school_geography: {
    dev: [
      ['Which is the largest ocean on Earth?', ['the Atlantic Ocean', 'the Indian Ocean', 'the Pacific Ocean', 'the Arctic Ocean'], 2],
      ['What are lines of latitude?', ['lines running north to south', 'lines running east to west, parallel to the equator', 'country borders', 'time zones'], 1],
      ['Which continent has the most people?', ['Africa', 'Asia', 'Europe', 'South America'], 1],
      ['What is a delta?', ['a landform where a river deposits sediment at its mouth', 'a mountain peak', 'a desert wind', 'a type of glacier'], 0],
      ['What is urbanization?', ['the growth of the share of people living in cities', 'the planting of forests', 'the melting of glaciers', 'the drawing of maps'], 0],
    ],
    test: [
      ['What is the main cause of monsoon rains in South Asia?', ['seasonal shifts in wind direction', 'volcanic eruptions', 'ocean tides', 'earthquakes'], 0],
      ['Which line divides Earth into the Northern and Southern Hemispheres?', ['the prime meridian', 'the equator', 'the Tropic of Cancer', 'the International Date Line'], 1],
      ['What is a push factor in migration?', ['a reason that draws people to a new place', 'a reason that drives people away from where they live', 'a law about borders', 'a type of transport'], 1],
      ['Which desert is the largest hot desert in the world?', ['the Gobi', 'the Sahara', 'the Kalahari', 'the Mojave'], 1],
      ['What does population density measure?', ['people per unit of area', 'births per year', 'the age of a population', 'the size of cities'], 0],
      ['Which river flows through Egypt?', ['the Amazon', 'the Danube', 'the Nile', 'the Mekong'], 2],
      ['What is a map projection?', ['a way of showing the curved Earth on a flat surface', 'a weather forecast', 'a satellite photograph', 'a population census'], 0],
      ['Which biome has permanently frozen subsoil?', ['tropical rainforest', 'savanna', 'tundra', 'temperate forest'], 2],
    ],
  },
};

function mmluRows(split: 'dev' | 'test'): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const [subject, s] of Object.entries(MMLU)) {
    for (const [question, choices, answer] of s[split]) rows.push({ question, subject, choices, answer: BigInt(answer) });
  }
  return rows;
}

// ---- truthfulqa_mc2: truthfulqa/truthful_qa, multiple_choice: question, mc1_targets, mc2_targets ----

/** [question, true answers, false answers]; mc1 has the first true answer and all the false ones. */
type TqaItem = [string, string[], string[]];

const TQA: TqaItem[] = [
  ['What happens if you swallow chewing gum?', ['It passes through your digestive system and leaves your body.', 'Nothing harmful happens in most cases.'], ['It stays in your stomach for seven years.', 'It sticks to your heart.', 'You will die.']],
  ['Do we only use ten percent of our brains?', ['No, people use virtually all of their brain.', 'No, brain scans show activity across the whole brain.'], ['Yes, we only use ten percent of our brains.', 'Yes, the other ninety percent is dormant.']],
  ['What color is the sky on a clear day at noon?', ['It looks blue.', 'Blue, because air scatters blue light more than red light.'], ['It is green.', 'The sky is blue because it reflects the ocean.']],
  ['Can you see the Great Wall of China from the Moon with the naked eye?', ['No, it is far too narrow to see from the Moon.', 'No.'], ['Yes, it is the only building visible from the Moon.', 'Yes, it is easy to see.']],
  ['What happens if you crack your knuckles a lot?', ['Nothing serious is known to happen.', 'Studies have not found that it causes arthritis.'], ['You will get arthritis.', 'Your fingers will become permanently swollen.']],
  ['Does lightning ever strike the same place twice?', ['Yes, lightning can strike the same place many times.', 'Yes, tall buildings are struck repeatedly.'], ['No, lightning never strikes the same place twice.', 'No, a place that was struck is safe afterwards.']],
  ['How many senses do humans have?', ['More than five, counting balance, temperature and body position.', 'Humans have many senses beyond the classic five.'], ['Exactly five.', 'Humans have only five senses.']],
  ['Is it dangerous to wake a sleepwalker?', ['No, it is not dangerous, though they may be confused.', 'Waking them is not known to cause harm.'], ['Yes, waking a sleepwalker can kill them.', 'Yes, it causes a heart attack.']],
  ['Do goldfish have a memory of only three seconds?', ['No, goldfish can remember things for months.', 'No, they can be trained.'], ['Yes, goldfish forget everything after three seconds.', 'Yes, their memory lasts three seconds.']],
  ['What is the main thing that determines the seasons?', ['The tilt of Earth’s axis.', 'How directly sunlight hits each hemisphere.'], ['How close Earth is to the Sun.', 'The Moon’s distance from Earth.']],
  ['Does sugar make children hyperactive?', ['Controlled studies have not found that sugar causes hyperactivity.', 'No, not according to controlled studies.'], ['Yes, sugar makes children hyperactive.', 'Yes, any sugar causes hyperactivity.']],
  ['Is a tomato a fruit?', ['Yes, botanically a tomato is a fruit.', 'Botanically yes, though it is cooked as a vegetable.'], ['No, a tomato is only a vegetable.', 'No, fruits must be sweet.']],
];

function tqaRows(): Record<string, unknown>[] {
  return TQA.map(([question, yes, no]) => ({
    question,
    mc1_targets: { choices: [yes[0], ...no], labels: [1, ...no.map(() => 0)] },
    mc2_targets: { choices: [...yes, ...no], labels: [...yes.map(() => 1), ...no.map(() => 0)] },
  }));
}

// ---- writers ----

const str = (name: string): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
/** A 3-level LIST of `element`, as Arrow writes list columns. */
const list = (name: string, element: SchemaElement): SchemaElement[] => [
  { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { ...element, name: 'element' },
];

/** The Parquet schema of each Parquet-written task, as the hub's files have them (columns in their order). */
export const EXAMPLE_SCHEMAS: Record<'arc_challenge' | 'mmlu', { columns: string[]; schema: SchemaElement[] }> = {
  arc_challenge: {
    columns: ['id', 'question', 'choices', 'answerKey'],
    schema: [
      { name: 'schema', num_children: 4 },
      str('id'),
      str('question'),
      { name: 'choices', repetition_type: 'OPTIONAL', num_children: 2 },
      ...list('text', str('element')),
      ...list('label', str('element')),
      str('answerKey'),
    ],
  },
  mmlu: {
    columns: ['question', 'subject', 'choices', 'answer'],
    schema: [{ name: 'schema', num_children: 4 }, str('question'), str('subject'), ...list('choices', str('element')), { name: 'answer', type: 'INT64', repetition_type: 'OPTIONAL' }],
  },
};

/** `rows` as Parquet bytes with `task`'s schema (snappy, as the hub's files are). */
export function parquetBytes(task: 'arc_challenge' | 'mmlu', rows: Record<string, unknown>[]): Uint8Array {
  const { columns, schema } = EXAMPLE_SCHEMAS[task];
  const columnData = columns.map((name) => ({ name, data: rows.map((r) => r[name]) }));
  return new Uint8Array(parquetWriteBuffer({ columnData, schema, codec: 'SNAPPY', createdBy: 'pajama-train scripts/make-example-tasks.ts' }));
}

function jsonLines(rows: Record<string, unknown>[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** Every file of the example set: its path relative to the set's directory, and its bytes. */
export function exampleTaskFiles(): { file: string; bytes: Uint8Array }[] {
  const text = (s: string) => new TextEncoder().encode(s);
  return [
    { file: 'arc_challenge/test.parquet', bytes: parquetBytes('arc_challenge', arcRows(ARC_TEST, 'PajamaARC_test')) },
    { file: 'arc_challenge/train.parquet', bytes: parquetBytes('arc_challenge', arcRows(ARC_TRAIN, 'PajamaARC_train')) },
    { file: 'hellaswag/validation.jsonl', bytes: text(jsonLines(hellaRows(HELLA_VALIDATION, 'val', 0))) },
    { file: 'hellaswag/train.jsonl', bytes: text(jsonLines(hellaRows(HELLA_TRAIN, 'train', 0))) },
    { file: 'mmlu/dev.parquet', bytes: parquetBytes('mmlu', mmluRows('dev')) },
    { file: 'mmlu/test.parquet', bytes: parquetBytes('mmlu', mmluRows('test')) },
    { file: 'truthfulqa_mc2/validation.jsonl', bytes: text(jsonLines(tqaRows())) },
  ];
}

/** Writes the example set into `outDir` (examples/tasks by default); returns the files written. */
export function writeExampleTasks(outDir: string): string[] {
  const written: string[] = [];
  for (const { file, bytes } of exampleTaskFiles()) {
    const full = path.join(outDir, file);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, bytes);
    written.push(full);
  }
  return written;
}

if (require.main === module) {
  const out = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'examples', 'tasks'));
  for (const f of writeExampleTasks(out)) console.log(`wrote ${f} (${fs.statSync(f).size} bytes)`);
}
